// What the 3DLabs nodes show in the graph: their output text, and Load Project's project picker.
//
// Owns: a read-only output display on the text-returning nodes (filled from the `executed`
// event's output.text) and a project dropdown on 3DLabs Load Project that fills its project_id
// STRING widget. Both widgets are display-only: serialize = false keeps them out of the saved
// workflow's positional widgets_values, and options.serialize = false keeps them out of the prompt.
// Status text during a run (the pack's send_progress_text) shows in the same box; ComfyUI's own line
// for it is hidden on these nodes. A failure's first line also goes to a toast of the pack's own.
//
// Also owns the seed of the generation nodes: every run of a changed seed is a paid job, and the
// frontend gives a node made from the node search (or LiteGraph.createNode) a seed control set to
// "randomize", so an unchanged graph queued twice would pay twice. A node made fresh gets "fixed";
// a node loaded from a workflow (or pasted) keeps the value saved with it, because LiteGraph calls
// onNodeCreated before configure() restores the saved widgets_values.

import {
  app, el, ensureStyles, lastStatus, OUTPUT_MIN_HEIGHT, onStatus, refreshStatus, routes, sandboxInUse,
} from "./client.js";
import { cachedText, inputSignature, recall, remember } from "./runtext.js";
import { toastFailure } from "./toasts.js";

export const DISPLAY_NODES = new Set([
  "3DLabsStory", "3DLabsScenePlan", "3DLabsImageGenerate", "3DLabsJobWait",
  "3DLabsLoadProject", "3DLabsProjects", "3DLabsRecentJobs", "3DLabsStoryboardTimeline", "3DLabsStoryboardVideo",
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
const NO_ACCOUNT = "(set a token, or choose the sandbox, in Settings › 3DLabs)";

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
    getMinHeight: () => OUTPUT_MIN_HEIGHT,
    serialize: false,
  });
  return displayOnly(widget);
}

/** ComfyUI's own status line on our nodes: kept out of saved workflows, and hidden. The status shows in
 * the node's output box instead, which wraps: the classic renderer draws ComfyUI's copy on one line, cut
 * at the node's edge, and next to the box it said everything twice. */
function quietProgress(node) {
  const widget = node?.widgets?.find((w) => w.name === PROGRESS_WIDGET);
  if (!widget) return;
  displayOnly(widget);
  widget.hidden = true; // the classic renderer and its DOM widgets
  widget.options.hidden = true; // the Vue node renderer
  widget.computeLayoutSize = () => ({ minHeight: 0, maxHeight: 0, minWidth: 0 }); // 1.2x still sized hidden ones
}

function outputWidget(node) {
  return node?.widgets?.find((w) => w.name === OUTPUT_WIDGET) ?? null;
}

/** Put ``text`` in the node's output box; kind "error" marks it red, "" clears the marks. */
function setOutput(node, text, kind = "") {
  const widget = outputWidget(node);
  if (!widget) return;
  widget.value = text;
  widget.element?.classList.toggle("tdl-error", kind === "error");
  if (kind !== "sandbox") widget.element?.classList.remove("tdl-sandbox");
  node.setDirtyCanvas?.(true, true);
}

// Nodes ComfyUI reused from its cache in the running prompt (execution_cached): they may get an
// `executed` event with the old output, which must not read like a new result.
const cachedNow = new Set();
// Each box's last result (not a status or an error): a reused node shows it again under the note.
const lastResult = new WeakMap();

function reusedText(node, fresh = "") {
  return cachedText(fresh || lastResult.get(node) || recall(inputSignature(app.graph, node)));
}

function showOutput(node, texts) {
  const widget = outputWidget(node);
  if (!widget) return;
  const cached = cachedNow.has(String(node.id));
  if (!Array.isArray(texts) || !texts.length) {
    if (cached) setOutput(node, reusedText(node));
    return;
  }
  let text = texts.map((t) => String(t)).join("\n\n");
  const sandbox = sandboxInUse();
  // Results from the bundled sandbox are made up: say so where the user reads them.
  if (sandbox && !text.includes("SANDBOX")) text = `[SANDBOX: made-up content]\n${text}`;
  if (cached) {
    text = reusedText(node, text);
  } else {
    lastResult.set(node, text);
    remember(inputSignature(app.graph, node), text);
  }
  widget.value = text;
  widget.element?.classList.remove("tdl-error");
  widget.element?.classList.toggle("tdl-sandbox", sandbox || text.includes("[SANDBOX"));
  node.setDirtyCanvas?.(true, true);
}

// --- Load Project's picker ---------------------------------------------------------------------

let projectsCache = null; // {at, list, error, promise}
let projectsFor = null; // what the cached list depends on (see listKey)

/** What a project list depends on: another base URL, token or workspace means other projects. */
function listKey(status) {
  return JSON.stringify([status?.base_url, status?.token?.configured, status?.token?.last4, status?.workspace_id,
    status?.sandbox?.in_use]);
}

async function loadProjects(force = false) {
  const key = listKey(lastStatus());
  if (key !== projectsFor) {
    // Another base URL, token or workspace means other projects: list them afresh.
    projectsFor = key;
    projectsCache = null;
  }
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

  function setValues(list) {
    // Changed in place: the Vue node renderer keeps its own copy of the options object but shares
    // this array, and reads it afresh whenever its dropdown opens.
    values.splice(0, values.length, ...list);
    if (picker.options.values !== values) picker.options.values = values;
  }

  function fill(result) {
    ids.clear();
    // "Pick a project…" stays an entry: the Vue renderer outlines a value missing from the list as invalid.
    const list = [PICK];
    if (result.error) list.push(`⚠ ${result.error.slice(0, 90)}`);
    else if (result.unusable) list.push(NO_ACCOUNT);
    else if (!result.list.length) list.push("(no projects in this workspace)");
    for (const project of result.list) {
      const label = labelFor(project);
      ids.set(label, project.id);
      list.push(label);
    }
    list.push(REFRESH);
    setValues(list);
    showCurrent();
  }

  let turn = 0;
  async function load(force = false) {
    const mine = ++turn;
    let status = lastStatus();
    if (!status) status = await refreshStatus().catch(() => null);
    // Without a token (and no sandbox) there is nothing to list: say where to set one, ask nobody.
    const usable = !status || status.sandbox?.in_use || status.token?.configured;
    const result = usable ? await loadProjects(force) : { list: [], error: null, unusable: true };
    if (mine === turn && node.graph !== null) fill(result);
  }

  function pick(value) {
    if (value === REFRESH) {
      picker.value = LOADING;
      load(true);
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

  // The list is loaded when the node is made or loaded, and again when the settings change (another
  // token, workspace or base URL), never on a click: the Vue node renderer opens its dropdown
  // without calling the widget's onClick. Listing projects is a free GET.
  let loadedFor = listKey(lastStatus());
  const stop = onStatus((status) => {
    const key = listKey(status);
    if (key === loadedFor || !node.graph) return;
    loadedFor = key;
    load(false);
  });
  const onRemoved = node.onRemoved;
  node.onRemoved = function (...args) {
    stop();
    return onRemoved?.apply(this, args);
  };
  queueMicrotask(() => load(false));

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

/** Grow a node loaded with a smaller saved size so that its output box gets its minimum height. */
function fitMinimum(node) {
  try {
    const min = node.computeSize?.();
    if (min && node.size && node.size[1] < min[1]) node.setSize?.([Math.max(node.size[0], min[0]), min[1]]);
  } catch {
    /* a size is cosmetic: never break loading a workflow over it */
  }
}

/** Forget the run's live previews once its pictures arrive: the frontend prefers them to a node's output
 * images and labels them with their own size (512 × 293 for a 1344 × 768 picture). */
function dropLivePreviews(node) {
  const inSubgraph = node.graph && app.graph && node.graph !== app.graph && node.graph.id;
  const locator = inSubgraph ? `${node.graph.id}:${node.id}` : String(node.id);
  try {
    // The frontend's own step when a node runs again; it also reaches the Vue renderer's copy of them.
    const pinia = document.getElementById("vue-app")?.__vue_app__?.config?.globalProperties?.$pinia;
    pinia?._s?.get?.("nodeOutput")?.revokePreviewsByLocatorId?.(locator);
  } catch {
    /* an older or newer frontend without that store: the plain copy below is what the canvas reads */
  }
  if (app?.nodePreviewImages) delete app.nodePreviewImages[locator];
}

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
    fitMinimum(this);
    return r;
  };
  const onConfigure = nodeType.prototype.onConfigure;
  nodeType.prototype.onConfigure = function (...args) {
    const r = onConfigure?.apply(this, args);
    fitMinimum(this);
    return r;
  };
  const onExecuted = nodeType.prototype.onExecuted;
  nodeType.prototype.onExecuted = function (message, ...rest) {
    if (message?.images?.length) dropLivePreviews(this);
    const r = onExecuted?.apply(this, [message, ...rest]);
    quietProgress(this);
    showOutput(this, message?.text);
    return r;
  };
}

function ourNode(id) {
  if (id === undefined || id === null) return null;
  const graph = app.graph;
  // A node inside a subgraph is reported as "outer:inner"; its box is on the node of that id.
  const node = graph?.getNodeById?.(id) ?? graph?.getNodeById?.(String(id).split(":").pop());
  return node && String(node.type).startsWith("3DLabs") ? node : null;
}

function ourNodes() {
  return (app.graph?.nodes ?? []).filter((n) => String(n.type).startsWith("3DLabs"));
}

/** Keep the sandbox marker current (the status may change from another tab), keep ComfyUI's status
 * text on our nodes out of saved workflows, and say on each node what became of it in a run:
 * cleared when a prompt starts, its error when it fails, "unchanged" when ComfyUI reused it. */
export function watchRuns(api) {
  api.addEventListener("execution_start", () => {
    cachedNow.clear();
    // The text of the last run would read as this run's: empty the boxes (the placeholder shows).
    for (const node of ourNodes()) setOutput(node, "");
    refreshStatus().catch(() => {});
  });
  api.addEventListener("execution_cached", (e) => {
    for (const id of e.detail?.nodes ?? []) {
      cachedNow.add(String(id));
      const node = ourNode(id);
      if (node) setOutput(node, reusedText(node));
    }
  });
  api.addEventListener("execution_error", (e) => {
    // Newer frontends show only a generic toast ("This node threw an error..."): the pack's message
    // belongs on the node that failed, and its first line in a toast of the pack's own.
    const d = e.detail ?? {};
    const node = ourNode(d.node_id);
    if (!node && !String(d.node_type ?? "").startsWith("3DLabs")) return;
    const message = String(d.exception_message ?? "").trim() || `${d.exception_type ?? "Error"} (no message)`;
    if (node) setOutput(node, `Failed: ${message}`, "error");
    toastFailure(d, message, node?.title || d.node_type || "3DLabs");
  });
  // Registered after the frontend's own listener, so its status widget exists by now: hide it, and
  // show the status in the node's own box (a reused node keeps its "unchanged" text).
  api.addEventListener("progress_text", (e) => {
    const node = ourNode(e.detail?.nodeId);
    if (!node) return;
    quietProgress(node);
    const text = String(e.detail?.text ?? "").trim();
    if (text && !cachedNow.has(String(node.id))) setOutput(node, text);
  });
}
