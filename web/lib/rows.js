// Pieces the 3DLabs settings rows share, and the Test connection row.
//
// Owns: a row's messages, kept across rebuilds (ComfyUI re-renders a custom settings row when its value
// changes), re-rendering a row on every status change while it is in the page, and the Test connection
// row, whose result is cleared once the settings it was about change. Side-effect free: ComfyUI loads
// every .js file under web/ as an extension.

import { button, el, ensureStyles, lastStatus, onStatus, refreshStatus, routes } from "./client.js";

// Messages survive a row being rebuilt (ComfyUI re-renders a custom row when its value changes).
export const notes = {};

export function note(key, text, kind = "") {
  notes[key] = text ? { text, kind } : null;
}

export function noteView(key) {
  const view = el("div", { class: "tdl-msg", role: "status", "aria-live": "polite" });
  const show = () => {
    const n = notes[key];
    view.textContent = n?.text ?? "";
    view.className = `tdl-msg ${n?.kind ? `tdl-${n.kind}` : ""}`;
  };
  show();
  return { view, show };
}

/** Call ``render(status)`` now and on every status change while ``node`` is in the page. */
export function live(node, render) {
  const status = lastStatus();
  if (status) render(status);
  else refreshStatus().catch((err) => render({ error: err.message }));
  const stop = onStatus((s) => {
    if (!node.isConnected && node.dataset.tdlMounted) {
      stop();
      return;
    }
    render(s);
  });
  // Mark once mounted so that a row rendered but not yet attached keeps listening.
  requestAnimationFrame(() => {
    node.dataset.tdlMounted = "1";
  });
}

// --- test connection -----------------------------------------------------------------------------

/** What a test result depends on: another base URL, sandbox choice, token or workspace makes it stale. */
function testedFor(status) {
  return JSON.stringify([status?.base_url, status?.sandbox?.in_use, status?.token?.configured, status?.token?.last4,
    status?.workspace_id]);
}

export function renderTest() {
  ensureStyles();
  const msg = noteView("test");
  const run = button("Test connection", async () => {
    run.disabled = true;
    note("test", "Testing…");
    msg.show();
    let tested = null;
    try {
      const status = await refreshStatus().catch(() => lastStatus());
      tested = testedFor(status);
      const noToken = status && !status.sandbox?.in_use && !status.token?.configured && !status.error;
      if (noToken) {
        // Nothing to test: asking 3DLabs without a token only earns a refusal that reads like a bad token.
        note("test", "No token is set, so nothing was sent. Paste a token or API key under Token and Save, or "
          + "choose 'sandbox' as the base URL (the 'Use the sandbox' button above) to try the nodes with made-up content.",
        "warn");
      } else {
        const answer = await routes.test();
        note("test", answer.message, answer.ok ? "ok" : "bad");
      }
    } catch (err) {
      note("test", err.message, "bad");
    }
    if (notes.test) notes.test.for = tested;
    run.disabled = false;
    msg.show();
  }, { "data-tdl": "test-button" });
  const row = el("div", { class: "tdl-row", "data-tdl": "test" }, el("div", { class: "tdl-line" }, run), msg.view);
  // A result about other settings (say "No token is set" after "Use the sandbox") would mislead: clear it.
  live(row, (status) => {
    const result = notes.test;
    if (!result?.for || run.disabled || status.error || result.for === testedFor(status)) return;
    note("test", "");
    msg.show();
  });
  return row;
}
