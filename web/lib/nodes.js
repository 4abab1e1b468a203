// What the 3DLabs nodes show in the graph: their output text, and Load Project's project picker.
//
// Owns: a read-only output display on the text-returning nodes (filled from the `executed`
// event's output.text) and a project dropdown on 3DLabs Load Project that fills its project_id
// STRING widget. Both widgets are display-only: serialize = false keeps them out of the saved
// workflow's positional widgets_values, and options.serialize = false keeps them out of the prompt.
// Status text during a run is ComfyUI's own: the pack's send_progress_text reaches the frontend's
// `progress_text` handler, which shows it on the node.
//
// Also owns the seed of the generation nodes: every run of a changed seed is a paid job, and the
// frontend gives a node made from the node search (or LiteGraph.createNode) a seed control set to
// "randomize", so an unchanged graph queued twice would pay twice. A node made fresh gets "fixed";
// a node loaded from a workflow (or pasted) keeps the value saved with it, because LiteGraph calls
// onNodeCreated before configure() restores the saved widgets_values.

import { app } from "../../../scripts/app.js";
import { el, ensureStyles, onStatus, refreshStatus, routes, sandboxInUse } from "./client.js";

export const DISPLAY_NODES = new Set([
  "3DLabsStory", "3DLabsScenePlan", "3DLabsImageGenerate", "3DLabsJobWait",
  "3DLabsLoadProject", "3DLabsProjects", "3DLabsRecentJobs", "3DLabsStoryboardTimeline",
]);
export const OUTPUT_WIDGET = "3dlabs_output";
// Nodes whose seed is part of what makes a paid job (their INPUT_TYPES ask for a seed control).
export const GENERATION_NODES = new Set(["3DLabsStory", "3DLabsScenePlan", "3DLabsImageGenerate"]);
export const SEED_WIDGET = "seed";
export const CONTROL_WIDGET = "control_after_generate";
// ComfyUI's own status-text widget (added on the first progress_text). Frontend 1.27 leaves it
// serializable, which would save the last status line into widgets_values; on our nodes it is not.
const PROGRESS_WIDGET = "$$node-text-preview";
export const PICKER_WIDGET = "project";

const PICK = "Pick a project…";
const LOADING = "Loading projects…";
const REFRESH = "↻ Refresh the list";
const PROJECTS_TTL_MS = 15000;

function displayOnly(widget) {
  widget.serialize = false;
  widget.options = widget.options ?? {};
  widget.options.serialize = false;
  return widget;
}

// --- output display ----------------------------------------------------------------------------

function addOutputDisplay(node) {
  ensureStyles();
  const area = el("textarea", {
    class: "comfy-multiline-input tdl-output", readonly: true, spellcheck: "false",
    placeholder: "3DLabs output appears here after a run (not saved in the workflow).",
  });
  const widget = node.addDOMWidget(OUTPUT_WIDGET, "3dlabs-output", area, {
    getValue: () => area.value,
    setValue: (v) => {
      area.value = typeof v === "string" ? v : String(v ?? "");
    },
    getMinHeight: () => 64,
    serialize: false,
  });
  return displayOnly(widget);
}

function quietProgress(node) {
  const widget = node?.widgets?.find((w) => w.name === PROGRESS_WIDGET);
  if (widget) displayOnly(widget);
}

function showOutput(node, texts) {
  if (!Array.isArray(texts) || !texts.length) return;
  const widget = node.widgets?.find((w) => w.name === OUTPUT_WIDGET);
  if (!widget) return;
  let text = texts.map((t) => String(t)).join("\n\n");
  const sandbox = sandboxInUse();
  // Results from the bundled sandbox are made up: say so where the user reads them.
  if (sandbox && !text.includes("SANDBOX")) text = `[SANDBOX: made-up content]\n${text}`;
  widget.value = text;
  widget.element?.classList.toggle("tdl-sandbox", sandbox || text.includes("[SANDBOX"));
  node.setDirtyCanvas?.(true, true);
}

// --- Load Project's picker ---------------------------------------------------------------------

let projectsCache = null; // {at, list, error, promise}

async function loadProjects(force = false) {
  if (!force && projectsCache?.promise) return projectsCache.promise;
  if (!force && projectsCache && Date.now() - projectsCache.at < PROJECTS_TTL_MS) return projectsCache;
  const promise = routes
    .projects()
    .then((list) => ({ at: Date.now(), list, error: null }))
    .catch((err) => ({ at: Date.now(), list: [], error: err.message }))
    .then((result) => {
      projectsCache = result;
      return result;
    });
  projectsCache = { ...(projectsCache ?? { at: 0, list: [], error: null }), promise };
  return promise;
}

function labelFor(project) {
  const name = (project.name || "Untitled").replace(/\s+/g, " ").trim();
  const short = name.length > 40 ? `${name.slice(0, 39)}…` : name;
  const date = project.created ? ` · ${String(project.created).slice(0, 10)}` : "";
  return `${short}${date} — ${project.id}`;
}

function addProjectPicker(node) {
  const idWidget = node.widgets?.find((w) => w.name === "project_id");
  if (!idWidget) return;
  const values = [PICK, REFRESH];
  const ids = new Map();

  const picker = node.addWidget("combo", PICKER_WIDGET, PICK, (value) => pick(value), { values, serialize: false });
  displayOnly(picker);
  picker.tooltip = "Your workspace's projects, listed through the pack's server route; picking one fills project_id.";

  function showCurrent() {
    const id = String(idWidget.value ?? "").trim();
    const match = [...ids.entries()].find(([, pid]) => pid === id);
    picker.value = match ? match[0] : id ? `project_id: ${id}` : PICK;
    node.setDirtyCanvas?.(true, true);
  }

  function fill(result) {
    ids.clear();
    values.length = 0;
    if (result.error) values.push(`⚠ ${result.error.slice(0, 90)}`);
    else if (!result.list.length) values.push("(no projects in this workspace)");
    for (const project of result.list) {
      const label = labelFor(project);
      ids.set(label, project.id);
      values.push(label);
    }
    values.push(REFRESH);
    showCurrent();
  }

  function pick(value) {
    if (value === REFRESH) {
      picker.value = LOADING;
      loadProjects(true).then(fill);
      return;
    }
    const id = ids.get(value);
    if (!id) {
      showCurrent();
      return;
    }
    idWidget.value = id;
    idWidget.callback?.(id, app.canvas, node);
    node.setDirtyCanvas?.(true, true);
  }

  // The list is fetched when the dropdown is opened (then at most every 15 s), not when a workflow
  // loads: opening a workflow makes no call to 3DLabs.
  const open = picker.onClick.bind(picker);
  picker.onClick = (options) => {
    const fresh = projectsCache && !projectsCache.promise && Date.now() - projectsCache.at < PROJECTS_TTL_MS;
    if (fresh && values.length > 1) {
      open(options);
      return;
    }
    picker.value = LOADING;
    node.setDirtyCanvas?.(true, true);
    loadProjects().then((result) => {
      fill(result);
      open(options);
    });
  };

  // Keep the picker's label in step with project_id (typed by hand, or restored from a workflow).
  const onIdChanged = idWidget.callback;
  idWidget.callback = function (...args) {
    const r = onIdChanged?.apply(this, args);
    showCurrent();
    return r;
  };
  const onConfigure = node.onConfigure;
  node.onConfigure = function (...args) {
    const r = onConfigure?.apply(this, args);
    showCurrent();
    return r;
  };
  if (projectsCache?.list?.length) fill(projectsCache);
}

// --- the seed of a fresh node ---------------------------------------------------------------------

/** Set the seed's "control after generate" to "fixed"; returns whether a control widget was found. */
export function pinSeedControl(node) {
  const seed = node?.widgets?.find((w) => w.name === SEED_WIDGET);
  // The frontend links the control to its seed widget; by name as a fallback for other frontends.
  const control = seed?.linkedWidgets?.find((w) => Array.isArray(w?.options?.values) || w?.name === CONTROL_WIDGET)
    ?? node?.widgets?.find((w) => w.name === CONTROL_WIDGET);
  if (!control) return false;
  control.value = "fixed";
  return true;
}

// --- wiring --------------------------------------------------------------------------------------

/** Called from beforeRegisterNodeDef for every node type; decorates only the pack's own. */
export function decorateNodeType(nodeType, nodeData) {
  if (!DISPLAY_NODES.has(nodeData?.name)) return;
  const onNodeCreated = nodeType.prototype.onNodeCreated;
  nodeType.prototype.onNodeCreated = function (...args) {
    const r = onNodeCreated?.apply(this, args);
    // Before configure(): a loaded node's saved choice overwrites this, a fresh node keeps it.
    if (GENERATION_NODES.has(nodeData.name)) pinSeedControl(this);
    // Appended after the node's own widgets, so the positional widgets_values stay as they are.
    if (nodeData.name === "3DLabsLoadProject") addProjectPicker(this);
    addOutputDisplay(this);
    return r;
  };
  const onExecuted = nodeType.prototype.onExecuted;
  nodeType.prototype.onExecuted = function (message, ...rest) {
    const r = onExecuted?.apply(this, [message, ...rest]);
    quietProgress(this);
    showOutput(this, message?.text);
    return r;
  };
}

/** Keep the sandbox marker current (the status may change from another tab), and keep ComfyUI's
 * status text on our nodes out of saved workflows. */
export function watchRuns(api) {
  // Another base URL, token or workspace means other projects: list them afresh next time.
  onStatus(() => {
    projectsCache = null;
  });
  api.addEventListener("execution_start", () => {
    refreshStatus().catch(() => {});
  });
  // Registered after the frontend's own listener, so its status widget exists by now.
  api.addEventListener("progress_text", (e) => {
    const node = app.graph?.getNodeById?.(e.detail?.nodeId);
    if (node && String(node.type).startsWith("3DLabs")) quietProgress(node);
  });
}
