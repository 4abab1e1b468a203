// The pack's cards in ComfyUI's template browser: each with the description its workflow file carries.
//
// Owns: finding the pack's template cards as the template browser shows them, and giving each the
// description saved in its workflow (extra.description, written by scripts/build_example_workflows.py).
// The frontend knows a custom pack's templates by file name only: 1.2x frontends describe each card with
// its own title again, newer ones with nothing. Side-effect free until describeTemplateCards() is called.

import { api, ensureStyles } from "./client.js";

const CARD = "[data-testid^='template-workflow-']";
const MARK = "tdl-template-description";

/** The pack's folder name (the template browser's category for its templates), from this file's URL. */
export function packModule(url = import.meta.url) {
  const match = /\/extensions\/([^/]+)\//.exec(new URL(url).pathname);
  return match ? decodeURIComponent(match[1]) : null;
}

let descriptions = null; // Promise<Map<name, text>>

async function loadDescriptions(module) {
  const listing = await (await api.fetchApi("/workflow_templates")).json();
  const found = new Map();
  await Promise.all((listing?.[module] ?? []).map(async (name) => {
    try {
      const path = `/workflow_templates/${encodeURIComponent(module)}/${encodeURIComponent(name)}.json`;
      const text = (await (await api.fetchApi(path)).json())?.extra?.description;
      if (typeof text === "string" && text.trim()) found.set(name, text.trim());
    } catch {
      /* a card without its description keeps the frontend's */
    }
  }));
  return found;
}

/** Give one card its description: in the frontend's own description line where it has one, else in a
 * line of the pack's under the title. Returns whether the card changed. */
export function describeCard(card, text, module) {
  // Another pack (or ComfyUI) may name a template alike: a card whose thumbnail comes from elsewhere is not
  // ours. (Newer frontends show a cached thumbnail as a blob: URL, which says nothing either way.)
  const src = decodeURIComponent(card.querySelector("img, video")?.getAttribute("src") ?? "");
  if (/\/templates\//.test(src) && !src.includes(`/workflow_templates/${module}/`)) return false;
  const name = card.dataset.testid.slice("template-workflow-".length);
  const own = card.querySelector(`.${MARK}`);
  const theirs = [...card.querySelectorAll("p")].find((p) => p !== own
    && [name, name.replace(/[-_]/g, " ").trim(), text].includes(p.textContent.trim()));
  const target = theirs ?? own;
  if (target) {
    if (target.textContent === text) return false;
    target.textContent = text;
    target.title = text;
    target.style.webkitLineClamp = "4"; // 1.2x clamps a description to two lines: the sandbox note is the end
    return true;
  }
  const title = card.querySelector("h3");
  if (!title) return false;
  ensureStyles();
  title.after(Object.assign(document.createElement("p"), { className: MARK, textContent: text, title: text }));
  return true;
}

/** Watch the page for the template browser and describe the pack's cards in it whenever it shows them. */
export function describeTemplateCards(root = document.body) {
  const module = packModule();
  if (!module || !root || typeof MutationObserver === "undefined") return () => {};
  let pending = false;
  const apply = async () => {
    pending = false;
    const cards = root.querySelectorAll(CARD);
    if (!cards.length) return;
    descriptions ??= loadDescriptions(module).catch(() => new Map());
    const known = await descriptions;
    for (const card of root.querySelectorAll(CARD)) {
      const text = known.get(card.dataset.testid.slice("template-workflow-".length));
      if (text) describeCard(card, text, module);
    }
  };
  const observer = new MutationObserver(() => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => apply().catch(() => {}));
  });
  observer.observe(root, { childList: true, subtree: true });
  return () => observer.disconnect();
}
