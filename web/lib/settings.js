// The "3DLabs" section of ComfyUI's settings dialog.
//
// Owns: the setting definitions, the custom-rendered rows (base URL, token, workspace; the test
// connection row and the rows' shared pieces are in rows.js) and keeping ComfyUI's copies of the
// harmless values in step with the pack's config.
//
// What is stored where:
// - the pack's config file on the ComfyUI server (<user dir>/3dlabs/config.json, mode 0600) is
//   the source of truth for everything, written only through the pack's /3dlabs routes;
// - ComfyUI's settings (comfy.settings.json, plaintext, readable by any client) hold mirrors of
//   the harmless values only: the base URL choice, the workspace id, dry run and max jobs;
// - the token is posted once to /3dlabs/token and the field is emptied at once. It never goes to
//   ComfyUI's settings (the token row never calls its setter), localStorage or the workflow.

import {
  app, button, describeToken, el, ensureStyles, envNote, lastStatus, rebindNote, refreshStatus, routes, SANDBOX_HINT,
  setStatus, toast,
} from "./client.js";
import { live, note, notes, noteView, renderTest } from "./rows.js";

export const IDS = {
  baseUrl: "3DLabs.Connection.BaseURL",
  token: "3DLabs.Connection.Token",
  workspace: "3DLabs.Connection.Workspace",
  test: "3DLabs.Connection.Test",
  start: "3DLabs.Connection.GetStarted",
  dryRun: "3DLabs.Spending.DryRun",
  maxJobs: "3DLabs.Spending.MaxJobs",
  perHour: "3DLabs.Spending.MaxJobsPerHour",
  perDay: "3DLabs.Spending.MaxJobsPerDay",
  budget: "3DLabs.Spending.Budget",
};

const DEFAULT_MAX_JOBS = 50;
const DEFAULT_PER_HOUR = 200;
const DEFAULT_PER_DAY = 1000;
const ENV_OF = {
  dry_run: "THREEDLABS_DRY_RUN", max_jobs: "THREEDLABS_MAX_JOBS",
  max_jobs_per_hour: "THREEDLABS_MAX_JOBS_PER_HOUR", max_jobs_per_day: "THREEDLABS_MAX_JOBS_PER_DAY",
};

let syncing = false;
let workspaceCache = null; // {at, list}: the last good answer

// --- base URL ------------------------------------------------------------------------------------

/** Save a base URL choice ("" = the 3DLabs service, "sandbox", or a URL); returns the new status. */
async function saveBaseUrl(baseUrl) {
  const status = await routes.saveSettings({ base_url: baseUrl });
  workspaceCache = null; // the list depends on the base URL
  setStatus(status);
  return status;
}

function baseUrlMirror(status) {
  if (status.base_url_choice === "sandbox") return "sandbox";
  return status.configured_base_url ?? "";
}

function renderBaseUrl(_name, setter, value) {
  ensureStyles();
  const select = el(
    "select",
    { "aria-label": "3DLabs base URL", class: "tdl-base-url" },
    el("option", { value: "default" }, "3DLabs service (default)"),
    el("option", { value: "sandbox" }, "Sandbox: bundled, made-up content"),
    el("option", { value: "custom" }, "Custom URL…"),
  );
  const input = el("input", { type: "url", placeholder: "https://www.3dlabs.it.com/api", spellcheck: "false",
    class: "tdl-custom-url", "aria-label": "Custom 3DLabs base URL" });
  const apply = button("Apply", () => save(input.value.trim()));
  const custom = el("div", { class: "tdl-line" }, input, apply);
  const info = el("div", { class: "tdl-info" });
  const msg = noteView("baseUrl");
  const row = el("div", { class: "tdl-row", "data-tdl": "base-url" }, select, custom, info, msg.view);

  async function save(baseUrl) {
    note("baseUrl", "Saving…");
    msg.show();
    try {
      const status = await saveBaseUrl(baseUrl);
      const rebind = status.sandbox?.in_use ? "" : rebindNote(status.token);
      if (status.sandbox?.in_use) note("baseUrl", "Sandbox started: results are made up and marked SANDBOX.", "warn");
      else if (rebind) note("baseUrl", `Saved. ${rebind}`, "warn");
      else note("baseUrl", "Saved.", "ok");
      if (status.notice) note("baseUrl", `${notes.baseUrl?.text ?? ""} ${status.notice}`, "warn");
      setter(baseUrlMirror(status)); // a harmless mirror; the config file is the source of truth
    } catch (err) {
      note("baseUrl", err.message, "bad");
    }
    msg.show();
  }

  select.addEventListener("change", () => {
    custom.style.display = select.value === "custom" ? "" : "none";
    if (select.value === "custom") input.focus();
    else save(select.value === "sandbox" ? "sandbox" : "");
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") save(input.value.trim());
  });

  live(row, (status) => {
    if (status.error) {
      info.textContent = status.error;
      info.className = "tdl-info tdl-bad";
      return;
    }
    const choice = status.base_url_choice ?? (value === "sandbox" ? "sandbox" : value ? "custom" : "default");
    if (document.activeElement !== select) select.value = choice;
    if (document.activeElement !== input) input.value = status.configured_base_url ?? "";
    custom.style.display = select.value === "custom" ? "" : "none";
    info.replaceChildren();
    info.className = "tdl-info";
    if (status.sandbox?.in_use) {
      info.append(el("span", { class: "tdl-badge" }, "SANDBOX"),
        status.sandbox.running ? `running at ${status.sandbox.url}. ` : "starts on first use. ",
        "Results are made up, free and marked SANDBOX; your token is not used.");
    } else if (status.base_url) {
      info.append(`In use: ${status.base_url} (${status.base_url_source}).`);
    } else if (status.settings_error) {
      info.append(el("span", { class: "tdl-bad" }, status.settings_error));
    }
    const env = envNote(status, "THREEDLABS_BASE_URL", "this choice");
    if (env) info.append(" ", el("span", { class: "tdl-warn" }, env));
  });
  return row;
}

// --- no account yet: the sandbox ----------------------------------------------------------------

// The first step for someone without a 3DLabs account: one click to the bundled sandbox.
function renderGetStarted() {
  ensureStyles();
  const info = el("div", { class: "tdl-info" });
  const use = button("Use the sandbox", async () => {
    use.disabled = true;
    note("start", "Starting the sandbox…");
    msg.show();
    try {
      const status = await saveBaseUrl("sandbox");
      const env = envNote(status, "THREEDLABS_BASE_URL", "this choice");
      note("start", env || "Sandbox chosen: the nodes now return made-up content, free, marked SANDBOX.", env ? "warn" : "ok");
      try {
        await app.extensionManager?.setting?.set(IDS.baseUrl, baseUrlMirror(status)); // the harmless mirror
      } catch {
        /* the pack's config file is what counts */
      }
    } catch (err) {
      note("start", err.message, "bad");
    }
    use.disabled = false;
    msg.show();
  }, { class: "tdl-button tdl-button-primary", "data-tdl": "use-sandbox" });
  const msg = noteView("start");
  const row = el("div", { class: "tdl-row", "data-tdl": "get-started" }, info, el("div", { class: "tdl-line" }, use), msg.view);
  live(row, (status) => {
    const sandbox = Boolean(status.sandbox?.in_use);
    info.className = sandbox ? "tdl-info tdl-ok" : "tdl-info";
    if (sandbox) info.textContent = "The sandbox is in use: made-up content, free, no account. Choose the 3DLabs service under Base URL when you have a token.";
    else if (status.token?.configured) info.textContent = "A token is set. The sandbox stays one click away for trying workflows for free.";
    else info.textContent = `${SANDBOX_HINT} Free, on this machine, no token needed.`;
    use.style.display = sandbox ? "none" : "";
  });
  return row;
}

// --- token ---------------------------------------------------------------------------------------

// The only row that handles the token. It never calls ``setter``: ComfyUI would store the value in
// comfy.settings.json. The value goes to the pack's route and the field is emptied at once.
function renderToken() {
  ensureStyles();
  const state = el("div", { class: "tdl-info tdl-token-status", "data-tdl": "token-status" });
  const input = el("input", {
    type: "password", autocomplete: "off", spellcheck: "false", "data-lpignore": "true", "data-1p-ignore": "true",
    placeholder: "Paste a token or API key", class: "tdl-token-input", "aria-label": "3DLabs token",
  });
  const save = button("Save", () => submit(input.value));
  const clear = button("Clear", () => submit(""), { secondary: true });
  const msg = noteView("token");
  const row = el("div", { class: "tdl-row", "data-tdl": "token" }, state, el("div", { class: "tdl-line" }, input, save, clear),
    msg.view);

  async function submit(raw) {
    const token = raw.trim();
    input.value = ""; // emptied before anything else happens: the field never keeps the token
    if (raw && !token) {
      note("token", "That was only spaces; nothing was saved.", "bad");
      msg.show();
      return;
    }
    note("token", token ? "Saving…" : "Clearing…");
    msg.show();
    try {
      const tokenStatus = await routes.setToken(token);
      workspaceCache = null; // the list depends on the token
      const status = await refreshStatus().catch(() => null);
      let text = token
        ? "Saved in the pack's config file on the ComfyUI server (mode 0600), not in ComfyUI's settings."
        : "Cleared from the pack's config file.";
      if (String(tokenStatus.source ?? "").startsWith("env ")) {
        text += ` ${tokenStatus.source.slice(4)} in ComfyUI's environment is still used first.`;
      }
      if (token && status?.base_url && !status.sandbox?.in_use) text += ` It is sent to ${status.base_url} only.`;
      if (tokenStatus.notice) text += ` ${tokenStatus.notice}`;
      note("token", text, tokenStatus.notice ? "warn" : "ok");
      if (!status) setStatus({ ...(lastStatus() ?? {}), token: tokenStatus });
    } catch (err) {
      note("token", err.message, "bad");
    }
    msg.show();
  }

  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") submit(input.value);
  });
  live(row, (status) => {
    if (status.error) {
      state.textContent = status.error;
      state.className = "tdl-info tdl-token-status tdl-bad";
      return;
    }
    const sandbox = Boolean(status.sandbox?.in_use);
    state.replaceChildren(describeToken(status.token, sandbox));
    // Orange only when something is wrong: with the sandbox in use no token is needed.
    const tone = status.token?.configured ? "tdl-ok" : sandbox ? "" : "tdl-warn";
    state.className = `tdl-info tdl-token-status ${tone}`.trim();
    if (sandbox && status.token?.configured) {
      state.append(" ", el("span", { class: "tdl-warn" }, "Unused while the sandbox is chosen (it has its own)."));
    }
  });
  return row;
}

// --- workspace -----------------------------------------------------------------------------------

async function loadWorkspaces(force = false) {
  if (!force && workspaceCache && Date.now() - workspaceCache.at < 30000) return workspaceCache;
  try {
    // Only a good answer is cached: after a failure the next look asks again.
    workspaceCache = { at: Date.now(), list: await routes.workspaces(), error: null };
    return workspaceCache;
  } catch (err) {
    workspaceCache = null;
    return { list: [], error: err.message };
  }
}

function renderWorkspace(_name, setter) {
  ensureStyles();
  const select = el("select", { "aria-label": "3DLabs workspace", class: "tdl-workspace" });
  const reload = button("↻", () => fill(true), { title: "Reload the list", "aria-label": "Reload workspaces" });
  const info = el("div", { class: "tdl-info" });
  const msg = noteView("workspace");
  const row = el("div", { class: "tdl-row", "data-tdl": "workspace" }, el("div", { class: "tdl-line" }, select, reload),
    info, msg.view);
  let status = lastStatus();

  let filling = 0;
  async function fill(force) {
    const turn = ++filling;
    select.replaceChildren(el("option", { value: "" }, "Loading workspaces…"));
    select.disabled = true;
    const usable = status?.token?.configured || status?.sandbox?.in_use;
    const { list, error } = usable ? await loadWorkspaces(force) : { list: [], error: null };
    if (turn !== filling) return; // a newer fill is under way
    const chosen = status?.configured_workspace_id ?? "";
    select.replaceChildren(el("option", { value: "" }, "(none: the account's default)"));
    for (const w of list) {
      select.append(el("option", { value: w.id }, w.name ? `${w.name} (${w.id})` : w.id));
    }
    if (chosen && !list.some((w) => w.id === chosen)) {
      select.append(el("option", { value: chosen }, `${chosen} (not in the list)`));
    }
    select.value = chosen;
    select.disabled = Boolean(status?.sandbox?.in_use);
    info.className = error ? "tdl-info tdl-bad" : "tdl-info";
    if (error) info.textContent = `Could not list workspaces: ${error}`;
    else if (!usable) info.textContent = "Set a token (above) to list your workspaces.";
    else if (status?.sandbox?.in_use) info.textContent = "The sandbox uses its own workspaces; this choice applies to the real service.";
    else info.textContent = `${list.length} workspace${list.length === 1 ? "" : "s"} on ${status?.base_url ?? "3DLabs"}.`;
    const env = envNote(status, "THREEDLABS_WORKSPACE_ID", "this choice");
    if (env) info.append(" ", el("span", { class: "tdl-warn" }, env));
  }

  select.addEventListener("change", async () => {
    note("workspace", "Saving…");
    msg.show();
    try {
      const next = await routes.saveSettings({ workspace_id: select.value });
      note("workspace", "Saved.", "ok");
      setStatus(next);
      setter(select.value); // an id, harmless to mirror
    } catch (err) {
      note("workspace", err.message, "bad");
    }
    msg.show();
  });

  let filledFor = null;
  live(row, (s) => {
    status = s;
    // Refill only when what the list depends on changed (base URL, token, sandbox).
    const key = JSON.stringify([s.base_url, s.token?.configured, s.token?.last4, s.sandbox?.in_use, s.configured_workspace_id]);
    if (key !== filledFor) {
      filledFor = key;
      fill(false);
    }
  });
  return row;
}

// --- dry run and max jobs: plain settings, mirrored into the config file -------------------------

const postTimers = {};

function postSetting(field, value) {
  clearTimeout(postTimers[field]);
  // Debounced: a number field may report every keystroke.
  postTimers[field] = setTimeout(async () => {
    try {
      const status = await routes.saveSettings({ [field]: value });
      setStatus(status);
      const env = envNote(status, ENV_OF[field], "this setting");
      if (env) toast("warn", env);
    } catch (err) {
      toast("error", err.message);
      syncMirrors().catch(() => {}); // put ComfyUI's copy back to what the pack uses
    }
  }, 400);
}

function mirrored(field) {
  return (newValue, oldValue) => {
    // ComfyUI calls onChange once at registration (oldValue undefined): that is not a user change.
    if (syncing || oldValue === undefined || newValue === oldValue) return;
    postSetting(field, newValue);
  };
}

/** Make ComfyUI's mirrors show what the pack's config says (the pack's config wins). */
export async function syncMirrors() {
  const status = await refreshStatus();
  const setting = app.extensionManager?.setting;
  if (!setting || !status) return status;
  const wanted = {
    [IDS.baseUrl]: baseUrlMirror(status),
    [IDS.workspace]: status.configured_workspace_id ?? "",
    [IDS.dryRun]: Boolean(status.dry_run),
    [IDS.maxJobs]: Number(status.max_jobs ?? DEFAULT_MAX_JOBS),
    [IDS.perHour]: Number(status.budget?.hour?.limit ?? DEFAULT_PER_HOUR),
    [IDS.perDay]: Number(status.budget?.day?.limit ?? DEFAULT_PER_DAY),
  };
  syncing = true;
  try {
    for (const [id, value] of Object.entries(wanted)) {
      if (setting.get(id) !== value) await setting.set(id, value);
    }
  } finally {
    syncing = false;
  }
  return status;
}

export function settingDefinitions() {
  const category = (group, name) => ["3DLabs", group, name];
  return [
    {
      id: IDS.start, name: "No account? Try the sandbox", category: category("Connection", "Get started"), sortOrder: 50,
      type: renderGetStarted, defaultValue: "",
      tooltip: "The bundled sandbox answers like 3DLabs with made-up content, on this machine, free and without an " +
        "account or token. Choose it here or as the Base URL.",
    },
    {
      id: IDS.baseUrl, name: "Base URL (3DLabs, custom or sandbox)", category: category("Connection", "Base URL"), sortOrder: 40,
      type: renderBaseUrl, defaultValue: "",
      tooltip: "Where the nodes send jobs: the 3DLabs service, a custom URL, or the bundled sandbox (made-up " +
        "content on this machine, for trying workflows without an account). Stored in the pack's config file.",
    },
    {
      id: IDS.token, name: "Token", category: category("Connection", "Token"), sortOrder: 30,
      type: renderToken, defaultValue: "",
      tooltip: "Stored server-side in the pack's config file (mode 0600); never in ComfyUI's settings, the " +
        "browser or the workflow. Clerk session tokens expire in 60 s: prefer an API key or THREEDLABS_TOKEN_COMMAND.",
    },
    {
      id: IDS.workspace, name: "Workspace", category: category("Connection", "Workspace"), sortOrder: 20,
      type: renderWorkspace, defaultValue: "",
      tooltip: "Sent as x-workspace-id. The list comes from 3DLabs through the pack's server route.",
    },
    {
      id: IDS.test, name: "Test connection", category: category("Connection", "Test"), sortOrder: 10,
      type: renderTest, defaultValue: "",
      tooltip: "Lists your workspaces with the settings above and says what happened. Costs nothing.",
    },
    {
      id: IDS.dryRun, name: "Dry run (submit nothing, spend nothing)", category: category("Spending", "Dry run"),
      type: "boolean", defaultValue: false, sortOrder: 20, onChange: mirrored("dry_run"),
      tooltip: "The nodes report what they would submit, with placeholder outputs, and spend no credits.",
    },
    {
      id: IDS.maxJobs, name: "Max jobs per prompt", category: category("Spending", "Max jobs"),
      type: "number", defaultValue: DEFAULT_MAX_JOBS, sortOrder: 10, attrs: { min: 1, max: 10000, step: 1, showButtons: true },
      onChange: mirrored("max_jobs"),
      tooltip: "A prompt that would submit more 3DLabs jobs than this is refused before anything is spent.",
    },
    {
      id: IDS.perHour, name: "Max jobs per hour (all prompts)", category: category("Spending", "Per hour"),
      type: "number", defaultValue: DEFAULT_PER_HOUR, sortOrder: 8, attrs: { min: 1, max: 10000, step: 1, showButtons: true },
      onChange: mirrored("max_jobs_per_hour"),
      tooltip: "Jobs submitted in the last hour, by every prompt, counted from the pack's journal: a node that " +
        "would pass this is refused before it spends anything. Stops a page that keeps queueing prompts.",
    },
    {
      id: IDS.perDay, name: "Max jobs per day (all prompts)", category: category("Spending", "Per day"),
      type: "number", defaultValue: DEFAULT_PER_DAY, sortOrder: 6, attrs: { min: 1, max: 240000, step: 1, showButtons: true },
      onChange: mirrored("max_jobs_per_day"),
      tooltip: "As 'Max jobs per hour', over the last 24 hours.",
    },
    {
      id: IDS.budget, name: "Spent so far", category: category("Spending", "Spent"), sortOrder: 4,
      type: renderBudget, defaultValue: "",
      tooltip: "3DLabs jobs submitted in the last hour and day, from the pack's journal, and what the budget leaves.",
    },
  ];
}

function renderBudget() {
  ensureStyles();
  const line = el("div", { class: "tdl-info", "data-tdl": "budget" });
  const row = el("div", { class: "tdl-row" }, line);
  live(row, (status) => {
    const b = status.budget;
    if (!b) {
      line.textContent = status.error ?? "";
      return;
    }
    line.textContent = `Last hour: ${b.hour.used} of ${b.hour.limit} jobs, ${b.hour.left} left. ` +
      `Last 24 hours: ${b.day.used} of ${b.day.limit}, ${b.day.left} left.`;
    line.className = `tdl-info ${b.hour.left && b.day.left ? "" : "tdl-warn"}`.trim();
  });
  return row;
}
