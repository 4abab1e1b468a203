// The pack's own toast for a failed 3DLabs node.
//
// Owns: saying, once per failure, the first line of the pack's message in a toast. Newer frontends toast
// only a generic "This node threw an error during execution. Check its inputs..." for any node (the pack's
// message is then only in the node's box and the error panel); 1.2x frontends open a dialog with the whole
// message, which needs no toast repeating it. Side-effect free: ComfyUI loads every .js file under web/.

import { toast } from "./client.js";

// Failures already toasted, by prompt and node: one toast per failure, however often the event arrives.
const toasted = new Set();
const ERROR_TOAST_MS = 12000;
const DIALOG_WAIT_MS = 400; // a frontend's own error dialog opens within a frame or two
const TOAST_MAX_CHARS = 320;

/** The first line of an error message (ComfyUI appends its tips after a line break), kept short:
 * the pack's messages say what happened and then what to do, so the start is the actionable part. */
export function firstLine(message) {
  const line = String(message ?? "").split("\n").map((l) => l.trim()).find(Boolean) ?? "";
  if (line.length <= TOAST_MAX_CHARS) return line;
  const cut = line.lastIndexOf(". ", TOAST_MAX_CHARS);
  return cut > 40 ? line.slice(0, cut + 1) : `${line.slice(0, TOAST_MAX_CHARS - 1)}…`;
}

function shownInDialog(text) {
  const probe = text.slice(0, 60);
  return [...document.querySelectorAll(".p-dialog, [role='dialog'], [role='alertdialog']")]
    .some((d) => d.getClientRects().length && d.innerText?.includes(probe));
}

/** Toast the first line of ``message`` for the failure an execution_error ``detail`` reports, once;
 * where the toast service is missing (older frontends) it goes to the console instead. */
export function toastFailure(detail, message, title) {
  const once = `${detail?.prompt_id ?? ""}:${detail?.node_id ?? ""}`;
  if (toasted.has(once)) return;
  toasted.add(once);
  const line = firstLine(message);
  setTimeout(() => {
    if (!shownInDialog(line)) toast("error", line, ERROR_TOAST_MS, `${title} failed`);
  }, DIALOG_WAIT_MS);
}
