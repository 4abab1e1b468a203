// The browser's side of the pack's /3dlabs routes, and the last known status shared by the UI.
//
// Owns: ComfyUI's app and api objects for the rest of web/, calling the routes (JSON in, JSON out, errors as messages), the cached status and its
// listeners, the status in words (token, environment overrides), toasts and small DOM helpers.
// It has no side effects when imported: ComfyUI loads every .js file under web/ as an extension,
// so helper modules must only export.

// ComfyUI's own objects, read the supported way: current frontends publish them on window.comfyAPI
// (and app.extensionManager for settings, toasts and commands); the "../../scripts/app.js" and
// "../../scripts/api.js" files are legacy shims. window.comfyAPI exists in every frontend the pack
// supports (1.27 and newer) by the time extensions load.
const comfyAPI = globalThis.comfyAPI ?? {};
export const app = comfyAPI.app?.app ?? globalThis.app;
export const api = comfyAPI.api?.api ?? app?.api;

/** The value of a ComfyUI setting, or `fallback` when it cannot be read. */
export function comfySetting(id, fallback = undefined) {
  try {
    const value = app?.extensionManager?.setting?.get(id);
    return value === undefined ? fallback : value;
  } catch {
    return fallback;
  }
}

export class RouteError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function call(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    // JSON only: the routes refuse anything else (a cross-site form cannot send JSON).
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await api.fetchApi(`/3dlabs${path}`, init);
  } catch (err) {
    throw new RouteError(`ComfyUI did not answer (${err?.message ?? err}).`, 0);
  }
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok) {
    if (resp.status === 404 && !data?.error) {
      throw new RouteError("The 3DLabs routes are missing: restart ComfyUI after installing or updating the pack.", 404);
    }
    throw new RouteError(data?.error ?? `ComfyUI answered HTTP ${resp.status} for /3dlabs${path}.`, resp.status);
  }
  return data;
}

export const routes = {
  status: () => call("GET", "/status"),
  // The token is sent once, to the pack's own route; the answer is its status, never the token.
  setToken: (token) => call("POST", "/token", { token }),
  saveSettings: (changes) => call("POST", "/settings", changes),
  workspaces: () => call("GET", "/workspaces"),
  projects: () => call("GET", "/projects"),
  test: () => call("POST", "/test", {}),
};

// --- the last known status, shared by the settings rows and the nodes -------------------------

let current = null;
let pending = null;
const listeners = new Set();

export function lastStatus() {
  return current;
}

export function setStatus(status) {
  if (!status) return;
  current = status;
  for (const fn of listeners) {
    try {
      fn(status);
    } catch (err) {
      console.error("3DLabs: status listener failed", err);
    }
  }
}

export function onStatus(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export async function refreshStatus() {
  // One request at a time: many rows and nodes may ask at once.
  pending ??= routes
    .status()
    .then((status) => {
      setStatus(status);
      return status;
    })
    .finally(() => {
      pending = null;
    });
  return pending;
}

export function sandboxInUse() {
  return Boolean(current?.sandbox?.in_use);
}

// --- feedback ----------------------------------------------------------------------------------

/** A toast through the frontend's toast service; the console where a frontend has none. */
export function toast(severity, detail, life = 6000, summary = "3DLabs") {
  try {
    const service = app.extensionManager?.toast;
    if (typeof service?.add === "function") {
      service.add({ severity, summary, detail, life });
      return true;
    }
  } catch {
    /* a toast is a courtesy: fall through to the console */
  }
  console.log(`${summary} ${severity}: ${detail}`);
  return false;
}

// --- status in words, and small UI pieces shared by the settings rows -------------------------

export const SANDBOX_HINT = "No account? Choose 'sandbox' as the base URL to try the nodes with made-up content.";

// Styled by the pack's own CSS (ensureStyles), from the palette variables both the 1.2x and the
// current frontends define: PrimeVue's classes lost their styles when the frontend left PrimeVue.
export function button(label, onclick, extra = {}) {
  const { secondary, ...attrs } = extra;
  return el("button", { type: "button", class: `tdl-button${secondary ? " tdl-button-secondary" : ""}`, onclick, ...attrs },
    label);
}

export function envNote(status, name, what) {
  return status?.env_overrides?.includes(name)
    ? `${name} is set in ComfyUI's environment and wins over ${what}.`
    : "";
}

// A token belongs to the URL it was saved for: after a base URL change the server reports it as not
// configured, with the origin it was saved for (saved_for) and the one in use now (needed_for).
export function rebindNote(token) {
  if (!token || token.configured || !token.needed_for) return "";
  if (token.saved_for && !token.problem?.startsWith("THREEDLABS_")) {
    return `The token was saved for ${token.saved_for}; save it again for ${token.needed_for}.`;
  }
  return token.problem ?? "";
}

export function describeToken(token, sandbox = false) {
  if (!token?.configured) {
    if (sandbox) return "Not configured (not needed now: the sandbox uses its own token).";
    return rebindNote(token) ? `Not configured for this URL: ${rebindNote(token)}`
      : `Not configured: the nodes cannot reach 3DLabs. ${SANDBOX_HINT}`;
  }
  const ending = token.last4 ? `, ends in …${token.last4}` : "";
  const what = token.kind === "command" ? "token command" : "token";
  // Where it goes, always in view: a base URL changed behind the user's back cannot hide.
  const bound = token.bound_to ? ` Sent only to ${token.bound_to}.` : "";
  return `Configured ${what} (${token.source}${ending}).${bound}`;
}

/** A small DOM builder: el("div", {class: "x", onclick: fn}, child, "text"). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// The output box shows about seven lines of 11 px text in both renderers.
export const OUTPUT_MIN_HEIGHT = 110;

/** The few styles of the settings rows and node displays, added once. */
export function ensureStyles() {
  if (document.getElementById("tdl-settings-style")) return;
  const css = `
    .tdl-row { display: flex; flex-direction: column; gap: 6px; align-items: stretch; width: 24rem; max-width: 48vw; }
    .tdl-line { display: flex; gap: 6px; align-items: center; }
    .tdl-line > input, .tdl-line > select { flex: 1; min-width: 0; }
    .tdl-row select, .tdl-row input { background: var(--comfy-input-bg, #222); color: var(--input-text, #ddd);
      border: 1px solid var(--border-color, #444); border-radius: 6px; padding: 6px 8px; font-size: 0.875rem; }
    .tdl-button { white-space: nowrap; cursor: pointer; font: inherit; font-size: 0.8rem; font-weight: 600;
      padding: 5px 12px; border-radius: 6px; border: 1px solid var(--border-color, #555);
      background: var(--comfy-input-bg, #2a2a2a); color: var(--input-text, var(--fg-color, #ddd)); line-height: 1.3; }
    .tdl-button:hover:not(:disabled) { filter: brightness(1.25); }
    .tdl-button:disabled { opacity: 0.55; cursor: default; }
    .tdl-button.tdl-button-primary { background: #2f7de1; border-color: #2f7de1; color: #fff; }
    .tdl-button.tdl-button-secondary { background: transparent; }
    .tdl-info, .tdl-msg { font-size: 0.8rem; color: var(--descrip-text, #999); line-height: 1.35; overflow-wrap: anywhere; }
    .tdl-msg:empty { display: none; }
    .tdl-ok { color: #4caf50; }
    .tdl-bad { color: var(--error-text, #ff6b6b); }
    .tdl-warn { color: #f0a020; }
    .tdl-badge { display: inline-block; padding: 0 6px; border-radius: 4px; font-weight: 600; font-size: 0.75rem;
      background: #f0a020; color: #111; margin-right: 4px; }
    textarea.tdl-output { font-family: var(--font-mono, monospace); font-size: 11px; line-height: 1.35;
      min-height: ${OUTPUT_MIN_HEIGHT}px; box-sizing: border-box; resize: vertical; }
    textarea.tdl-output.tdl-error { border: 2px solid var(--error-text, #ff6b6b) !important; }
    textarea.tdl-output.tdl-sandbox { border: 2px solid #f0a020 !important; }
    .tdl-template-description { margin: 0; font-size: 0.75rem; line-height: 1.35; opacity: 0.75; overflow: hidden;
      display: -webkit-box; -webkit-line-clamp: 4; -webkit-box-orient: vertical; }
  `;
  document.head.append(el("style", { id: "tdl-settings-style" }, css));
}
