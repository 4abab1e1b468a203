// What a 3DLabs node's output box says about a run that paid nothing, and the results it can say it again from.
//
// Owns: the text of a node ComfyUI reused from its cache (a "free re-run"), and the memory of each node's
// last result by what went into it, so that a node reused without a fresh `executed` event (older cores
// send none for a cached node, and a template opened anew has no earlier text in its boxes) still shows
// the result it stands for. Side-effect free: ComfyUI loads every .js file under web/ as an extension.

export const CACHED_NOTE = "unchanged: reused the last result; no new job, nothing paid";
// The line each run ends with ("3DLabs jobs this prompt: submitted 1 image; ..."): under the note it
// would read as paid again, so a reused result is shown without it.
const TALLY = /^(\[SANDBOX\] )?3DLabs jobs this prompt:/;
const REMEMBERED_MAX = 200;

/** The box's text for a node ComfyUI reused: the note, then the reused result without its old tally. */
export function cachedText(result = "") {
  let old = String(result ?? "");
  if (old.startsWith(CACHED_NOTE)) old = old.slice(CACHED_NOTE.length);
  const kept = old.split("\n").filter((line) => !TALLY.test(line)).join("\n").trim();
  return kept ? `${CACHED_NOTE}\n\n${kept}` : CACHED_NOTE;
}

/** A key for what went into ``node``: its type and saved widget values, and the same of every node
 * upstream (by link), much as ComfyUI keys its cache; "" when the graph cannot be read. */
export function inputSignature(graph, node, seen = new Map()) {
  if (!node) return "";
  const id = String(node.id);
  if (seen.has(id)) return seen.get(id);
  seen.set(id, "loop");
  const values = (node.widgets ?? []).filter((w) => w.serialize !== false && !w.name?.startsWith?.("$$"))
    .map((w) => [w.name, w.value]);
  const inputs = (node.inputs ?? []).map((input) => {
    const link = input.link == null ? null : graph?.links?.get?.(input.link) ?? graph?.links?.[input.link];
    const from = link ? graph?.getNodeById?.(link.origin_id) : null;
    return [input.name, from ? inputSignature(graph, from, seen) : null, link?.origin_slot ?? null];
  });
  let sig = "";
  try {
    sig = JSON.stringify([node.type, values, inputs]);
  } catch {
    sig = "";
  }
  seen.set(id, sig);
  return sig;
}

const remembered = new Map();

/** Keep ``text`` as the result of a run with these inputs (newest kept, oldest dropped). */
export function remember(signature, text) {
  if (!signature || !text) return;
  remembered.delete(signature);
  remembered.set(signature, text);
  while (remembered.size > REMEMBERED_MAX) remembered.delete(remembered.keys().next().value);
}

export function recall(signature) {
  return (signature && remembered.get(signature)) || "";
}
