// Drives a real ComfyUI in headless Chromium for tests/test_browser_e2e.py (playwright-core).
//
// Owns the browser half of the browser test: set the token through the 3DLabs settings panel,
// open every template of the pack through the template browser and run it, save a workflow through
// the UI, use Load Project's dropdown, make Image Generate the way the node search does and queue it
// twice unchanged (counting the sandbox's jobs), take screenshots, and write everything the Python
// side checks for token leaks into results.json. It never writes the token itself anywhere.
//
// Also the new-user path (no token: the sandbox offered first, Test connection saying no token is set,
// the settings search finding "sandbox", a run without a token saying so once on screen, "Use the
// sandbox" clearing the old test result; then the test's sandbox as a custom base URL), the template
// cards' descriptions and the zoom templates open at on a 1600x900 window, what the nodes say about a
// run (their status once, in their own box; a failure's message on the node; "unchanged ... nothing
// paid" with the reused result for nodes ComfyUI reused, also in a template opened anew and after a
// reload; boxes emptied when a prompt starts; a readable box height), Load Project's list without a
// click (also after a page reload), live previews while Image Generate runs slow sandbox jobs and its
// pictures at their real size afterwards, the node search finding the pack's nodes by the words users
// type, and the node help panel showing the pack's page. Works with
// the classic canvas and with the Vue node renderer (TDL_VUE_NODES=1) of newer frontends.
//
// Environment: COMFY_URL, TDL_TOKEN (the secret to set), TDL_OUT (screenshots and results.json),
// TDL_SANDBOX_URL (the sandbox's origin, for its /__sandbox/stats job counters),
// TDL_MODULE (the pack's folder name), TDL_FALLBACK_DIR (optional: write a small workflow built in
// the page there when the pack ships no example workflows), TDL_VUE_NODES ("1": Vue nodes on),
// TDL_SANDBOX_CONTROL (a file the Python side watches: {"job_seconds": n} slows the sandbox's jobs,
// acknowledged in the same name with .ack), TDL_HELP_TEXT (a line of the Image Generate help page),
// PLAYWRIGHT_CORE_DIR, CHROMIUM.
"use strict";

const fs = require("fs");
const path = require("path");

const CORE_DIR = process.env.PLAYWRIGHT_CORE_DIR || "/work/browser";
const { chromium } = require(require.resolve("playwright-core", { paths: [CORE_DIR, path.join(CORE_DIR, "node_modules")] }));

const BASE = process.env.COMFY_URL;
const TOKEN = process.env.TDL_TOKEN;
const OUT = process.env.TDL_OUT;
const MODULE = process.env.TDL_MODULE || "comfyui-3dlabs";
const FALLBACK_DIR = process.env.TDL_FALLBACK_DIR || "";
const RUN_TIMEOUT_MS = Number(process.env.TDL_RUN_TIMEOUT_MS || 360000); // a liveness bound: a video template takes 3 min on a busy 2-core machine
const SANDBOX = process.env.TDL_SANDBOX_URL || "";
const VUE = process.env.TDL_VUE_NODES === "1";
const CONTROL = process.env.TDL_SANDBOX_CONTROL || "";
const HELP_TEXT = process.env.TDL_HELP_TEXT || "";
const CACHED_NOTE = "unchanged: reused the last result; no new job, nothing paid";
const SETTINGS_DIALOG = ".settings-container, [data-testid='settings-dialog']";
const DIALOGS = ".p-dialog, [role='dialog'], [role='alertdialog']";

const results = { steps: [], workflows: [], errors: [], pageErrors: [], consoleErrors: [], httpErrors: [], deprecations: [],
  templatePath: null };

function step(message) {
  const line = `[e2e ${new Date().toISOString().slice(11, 19)}] ${message}`;
  results.steps.push(line);
  console.log(line);
}

async function fitView(page) {
  await page.evaluate(async () => {
    const { app } = window.comfyAPI.app;
    await app.extensionManager.command.execute("Comfy.Canvas.FitView");
    app.canvas.setDirty(true, true);
  }).catch((err) => step(`fit view failed: ${err.message}`));
  await page.waitForTimeout(400);
}

async function shot(page, name) {
  const file = path.join(OUT, `${name}.png`);
  await page.screenshot({ path: file });
  step(`screenshot ${file}`);
  return file;
}

async function postSetting(id, value) {
  const r = await fetch(`${BASE}/settings/${id}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(value),
  });
  if (!r.ok) throw new Error(`POST /settings/${id}: ${r.status}`);
}

/** Visible PrimeVue dialogs (error dialogs, missing-node dialogs...), with their text. */
async function openDialogs(page) {
  return page.evaluate((sel) => [...document.querySelectorAll(sel)]
    .filter((d) => d.offsetParent !== null || d.getClientRects().length)
    .map((d) => d.innerText.slice(0, 500)), DIALOGS);
}

async function closeDialogs(page) {
  for (let i = 0; i < 3 && (await openDialogs(page)).length; i++) {
    await page.keyboard.press("Escape");
    await page.waitForTimeout(300);
  }
}

// --- settings ---------------------------------------------------------------------------------

async function openSettings(page) {
  try {
    await page.evaluate(() => window.comfyAPI.app.app.extensionManager.command.execute("Comfy.ShowSettingsDialog"));
    await page.waitForSelector(SETTINGS_DIALOG, { timeout: 10000 });
    return "command";
  } catch (err) {
    step(`settings via the command failed (${err.message.split("\n")[0]}); trying the menu`);
  }
  try {
    await page.click(".comfyui-logo-wrapper", { timeout: 5000 });
    await page.locator(".comfy-command-menu .p-menubar-item-label", { hasText: /^Settings$/ }).first().click({ timeout: 5000 });
    await page.waitForSelector(SETTINGS_DIALOG, { timeout: 10000 });
    return "menu";
  } catch (err) {
    step(`settings via the menu failed (${err.message.split("\n")[0]}); trying Ctrl+,`);
  }
  await page.keyboard.press("Escape");
  await page.click("#graph-canvas", { position: { x: 640, y: 400 } }).catch(() => {});
  await page.keyboard.press("Control+Comma");
  await page.waitForSelector(SETTINGS_DIALOG, { timeout: 10000 });
  return "keyboard";
}

async function openOurSettings(page) {
  const how = await openSettings(page);
  step(`settings dialog opened (${how})`);
  // 1.2x: a PrimeVue listbox; newer: a nav of buttons.
  await page.locator(`.settings-sidebar [role='option'], [data-testid='settings-dialog'] nav [role='button']`,
    { hasText: /^\s*3DLabs\s*$/ }).first().click();
  await page.locator("[data-tdl='token']").waitFor({ timeout: 10000 });
}

async function closeSettings(page) {
  await page.keyboard.press("Escape");
  await page.waitForSelector(SETTINGS_DIALOG, { state: "detached", timeout: 10000 }).catch(() => {});
}

async function clickTest(page) {
  await page.click("[data-tdl='test-button']");
  await page.waitForFunction(() => {
    const m = document.querySelector("[data-tdl='test'] .tdl-msg");
    return m && m.innerText && !m.innerText.startsWith("Testing");
  }, null, { timeout: 30000 });
  return page.locator("[data-tdl='test'] .tdl-msg").innerText();
}

/** Before any token: what someone without an account sees. */
async function newUserSettings(page) {
  await openOurSettings(page);
  const fresh = {};
  fresh.tokenStatus = await page.locator(".tdl-token-status").innerText();
  fresh.getStarted = await page.locator("[data-tdl='get-started']").innerText().catch(() => "");
  fresh.useSandboxButton = await page.locator("[data-tdl='use-sandbox']").isVisible().catch(() => false);
  fresh.buttonStyle = await page.$eval("[data-tdl='test-button']", (b) => {
    const cs = getComputedStyle(b);
    return { background: cs.backgroundColor, borderRadius: cs.borderRadius, padding: cs.padding, color: cs.color };
  });
  fresh.testConnection = await clickTest(page);
  step(`no token: status "${fresh.tokenStatus}"; test connection: ${fresh.testConnection}`);
  await shot(page, "settings-new-user");
  // The settings search: "sandbox" must find one of the pack's settings.
  const search = page.locator(`${SETTINGS_DIALOG.split(", ").map((d) => `${d} input[placeholder*='Search' i]`).join(", ")}`).first();
  try {
    await search.fill("sandbox", { timeout: 5000 });
    await page.waitForTimeout(1200);
    fresh.searchResult = await page.evaluate(() => {
      const rows = [...document.querySelectorAll("[data-tdl]")].filter((e) => e.getClientRects().length);
      return rows.map((e) => e.dataset.tdl);
    });
    fresh.searchFindsSandbox = fresh.searchResult.some((name) => ["get-started", "base-url"].includes(name));
    await shot(page, "settings-search-sandbox");
    await search.fill("");
    await page.waitForTimeout(500);
  } catch (err) {
    fresh.searchError = err.message.split("\n")[0];
    fresh.searchFindsSandbox = false;
  }
  step(`settings search "sandbox" shows: ${JSON.stringify(fresh.searchResult ?? fresh.searchError)}`);
  results.newUser = fresh;
  await closeSettings(page);
}

/** The first run of a template before any token: what a new user reads about it on screen. */
async function noTokenRun(page) {
  await closeDialogs(page);
  const name = "One prompt to one image";
  await page.evaluate(async ({ module, name }) => {
    const { app } = window.comfyAPI.app;
    const json = await (await fetch(`/api/workflow_templates/${module}/${name}.json`)).json();
    await app.loadGraphData(json, true, true, "tdl-e2e-no-token");
  }, { module: MODULE, name });
  const run = await queueAndWait(page);
  const error = run.events.find((e) => e.type === "execution_error");
  await page.waitForTimeout(1500); // the pack's toast waits a moment to see whether the frontend opened a dialog
  const seen = await page.evaluate(() => {
    const shown = (e) => e.getClientRects().length > 0;
    const dialogSelector = ".p-dialog, [role='dialog'], [role='alertdialog']";
    // Toasts by role, not by one frontend's markup: PrimeVue's .p-toast-message (older frontends), the newer
    // frontends' [data-testid=toast] items and overlays alike; the outermost of them, outside any dialog, and
    // seen on screen (screen-reader copies of a toast are 1 px boxes).
    const toastSelector = ".p-toast-message, [data-testid='toast'], [role='alert'], [role='status']";
    const visible = (e) => { const r = e.getBoundingClientRect(); return r.width > 4 && r.height > 4; };
    const toasts = [...document.querySelectorAll(toastSelector)]
      .filter((e) => visible(e) && !e.closest(dialogSelector) && !e.parentElement?.closest(toastSelector))
      .map((t) => t.innerText);
    return {
      toasts,
      dialogs: [...document.querySelectorAll(dialogSelector)].filter(shown).map((d) => d.innerText),
      page: document.body.innerText,
    };
  });
  await shot(page, "no-token-run");
  const message = String(error?.message ?? "");
  const first = message.split("\n").map((l) => l.trim()).find(Boolean) ?? "";
  const count = (text) => (first ? text.split(first).length - 1 : 0);
  results.noToken = {
    end: run.end, message, firstLine: first, exceptionType: error?.exceptionType ?? null,
    packToasts: seen.toasts.filter((t) => t.startsWith("3DLabs") && first && t.includes(first)),
    inToasts: seen.toasts.reduce((n, t) => n + count(t), 0), inDialogs: seen.dialogs.reduce((n, d) => n + count(d), 0),
    genericHint: /This node threw an error during execution/.test(seen.page),
  };
  step(`no-token run: ${run.end.type}; first line "${first.slice(0, 80)}" in ${results.noToken.inToasts} toast(s) and `
    + `${results.noToken.inDialogs} dialog(s); pack toasts ${JSON.stringify(results.noToken.packToasts).slice(0, 300)}`);
  await page.locator(".p-toast-message .p-toast-close-button, [data-testid='toast-close'], [data-testid='error-overlay-dismiss']")
    .evaluateAll((bs) => bs.forEach((b) => b.click())).catch(() => {});
  await closeDialogs(page);
}

/** "Use the sandbox" after a Test connection without a token: the old result must not stay; then the
 * test's own sandbox as a custom base URL, where the rest of the run takes place. */
async function sandboxThenCustomUrl(page) {
  await openOurSettings(page);
  const testNote = () => page.locator("[data-tdl='test'] .tdl-msg").innerText().catch(() => "");
  const switched = { testBefore: await testNote() };
  await page.click("[data-tdl='use-sandbox']");
  await page.waitForFunction(() => /Sandbox chosen|wins over/.test(document.querySelector("[data-tdl='get-started'] .tdl-msg")?.innerText ?? ""),
    null, { timeout: 30000 });
  await page.waitForTimeout(500);
  switched.startNote = await page.locator("[data-tdl='get-started'] .tdl-msg").innerText();
  switched.testAfter = await testNote();
  Object.assign(switched, await page.$eval(".tdl-token-status", (s) => ({ tokenStatus: s.innerText, tokenClass: s.className,
    tokenColor: getComputedStyle(s).color })));
  await shot(page, "settings-after-use-sandbox");
  switched.testOnSandbox = await clickTest(page);
  step(`use the sandbox: test before "${switched.testBefore.slice(0, 50)}", after "${switched.testAfter}"; token status `
    + `"${switched.tokenStatus}" (${switched.tokenClass}, ${switched.tokenColor}); test now: ${switched.testOnSandbox.slice(0, 100)}`);
  results.sandboxSwitch = switched;
  // The rest of the run talks to the test's sandbox (its fault switches and job counters), as a custom URL.
  await page.selectOption("select.tdl-base-url", "custom");
  await page.fill(".tdl-custom-url", `${SANDBOX}/api`);
  await page.locator("[data-tdl='base-url'] button", { hasText: "Apply" }).click();
  await page.waitForFunction(() => /Saved/.test(document.querySelector("[data-tdl='base-url'] .tdl-msg")?.innerText ?? ""),
    null, { timeout: 15000 });
  step(`base URL set to ${SANDBOX}/api through the settings`);
  await closeSettings(page);
}

async function setTokenThroughSettings(page) {
  await openOurSettings(page);
  const row = page.locator("[data-tdl='token']");
  await row.waitFor({ timeout: 10000 });
  const before = await page.locator(".tdl-token-status").innerText();
  step(`token status before: ${before}`);
  await page.fill(".tdl-token-input", TOKEN);
  await row.locator("button", { hasText: "Save" }).click();
  await page.waitForFunction((last4) => {
    const s = document.querySelector(".tdl-token-status");
    return s && s.innerText.includes("Configured") && s.innerText.includes(last4);
  }, TOKEN.slice(-4), { timeout: 15000 });
  results.tokenInputAfterSave = await page.inputValue(".tdl-token-input");
  results.tokenStatus = await page.locator(".tdl-token-status").innerText();
  results.tokenMessage = await row.locator(".tdl-msg").innerText();
  step(`token status after: ${results.tokenStatus}`);

  results.testConnection = await clickTest(page);
  step(`test connection: ${results.testConnection}`);
  await page.waitForFunction(() => {
    const s = document.querySelector("select.tdl-workspace");
    return s && !s.disabled && s.options.length > 1;
  }, null, { timeout: 15000 }).catch(() => step("workspace list did not fill"));
  results.workspaceOptions = await page.$$eval("select.tdl-workspace option", (os) => os.map((o) => o.textContent));
  await page.waitForTimeout(300);
  await shot(page, "settings-3dlabs");
  await closeSettings(page);
}

// --- a workflow of our own, when the pack ships none yet -------------------------------------

async function writeFallbackWorkflow(page) {
  const workflow = await page.evaluate(() => {
    const { app } = window.comfyAPI.app;
    const LG = window.LiteGraph;
    app.graph.clear();
    const add = (type, x, y) => {
      const node = LG.createNode(type);
      node.pos = [x, y];
      app.graph.add(node);
      return node;
    };
    const widget = (node, name) => node.widgets.find((w) => w.name === name);
    const story = add("3DLabsStory", 40, 40);
    const plan = add("3DLabsScenePlan", 480, 40);
    const image = add("3DLabsImageGenerate", 900, 40);
    const save = add("SaveImage", 1320, 40);
    const projects = add("3DLabsProjects", 40, 560);
    const recent = add("3DLabsRecentJobs", 480, 560);
    widget(story, "topic").value = "A lighthouse keeper's cat who guides ships home";
    widget(save, "filename_prefix").value = "tdl_e2e";
    const showProjects = add("PreviewAny", 40, 760);
    const showRecent = add("PreviewAny", 480, 760);
    story.connect(0, plan, plan.findInputSlot("story"));
    plan.connect(1, image, image.findInputSlot("prompt"));
    image.connect(0, save, save.findInputSlot("images"));
    projects.connect(0, showProjects, 0);
    recent.connect(0, showRecent, 0);
    return app.graph.serialize();
  });
  const file = path.join(FALLBACK_DIR, "tdl_e2e_chain.json");
  fs.writeFileSync(file, JSON.stringify(workflow, null, 2));
  step(`wrote the fallback workflow ${file}`);
  await page.evaluate(() => window.comfyAPI.app.app.graph.clear());
}

// --- templates -------------------------------------------------------------------------------

async function openTemplateThroughUi(page, name) {
  await closeDialogs(page);
  if (!(await page.locator(".templates-tab-button").count())) throw new Error("no .templates-tab-button in this frontend");
  await page.click(".templates-tab-button", { timeout: 10000 });
  await page.waitForSelector("[data-testid='template-workflows-content']", { timeout: 15000 });
  // The side nav lists custom-node templates under the pack's folder name (1.2x: inside the content's
  // testid; newer: in the dialog's own nav, under "Extensions").
  await page.locator("[data-testid='template-workflows-content'] *, [role='dialog'] nav *, [role='dialog'] aside *",
    { hasText: new RegExp(`^\\s*${MODULE.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*$`) }).last().click({ timeout: 10000 });
  const card = page.locator(`[data-testid='template-workflow-${name}']`);
  await card.waitFor({ timeout: 15000 });
  if (!results.templateCards) results.templateCards = await templateCardTexts(page);
  if (!results.templateBrowserShot) results.templateBrowserShot = await shot(page, "template-browser");
  await card.click();
  await page.waitForSelector("[data-testid='template-workflows-content']", { state: "detached", timeout: 15000 });
}

/** The text of each of the pack's cards, once the extension has given them their descriptions. */
async function templateCardTexts(page) {
  const read = () => page.evaluate((names) => Object.fromEntries(names.map((n) => [n,
    document.querySelector(`[data-testid='template-workflow-${CSS.escape(n)}']`)?.innerText?.replace(/\s+/g, " ").trim() ?? null])),
  results.templates);
  await page.waitForFunction((names) => names.every((n) => {
    const card = document.querySelector(`[data-testid='template-workflow-${CSS.escape(n)}']`);
    return !card || /sandbox/i.test(card.innerText);
  }), results.templates, { timeout: 8000, polling: 250 }).catch(() => step("the template cards did not all get a description"));
  const texts = await read();
  step(`template cards: ${JSON.stringify(texts).slice(0, 600)}`);
  return texts;
}

let templateUiFailed = false;

async function openTemplate(page, name) {
  try {
    // One failure is enough: the next templates go through the API at once (saves a timeout each).
    if (templateUiFailed) throw new Error("the template browser failed before");
    await openTemplateThroughUi(page, name);
    return "ui";
  } catch (err) {
    templateUiFailed = true;
    step(`template browser failed for ${name} (${err.message.split("\n")[0]}); loading through /api/workflow_templates`);
    await closeDialogs(page);
    await page.evaluate(async ({ module, name }) => {
      const { app } = window.comfyAPI.app;
      const json = await (await fetch(`/api/workflow_templates/${module}/${name}.json`)).json();
      // As the template browser opens it (newer frontends then fit the view to the graph).
      await app.loadGraphData(json, true, true, name, { openSource: "template" });
    }, { module: MODULE, name });
    return "api";
  }
}

async function installRecorders(page) {
  await page.evaluate(() => {
    const { api } = window.comfyAPI.api;
    window.__tdl = { events: [] };
    const outputs = () => (window.comfyAPI.app.app.graph?.nodes ?? []).filter((n) => String(n.type).startsWith("3DLabs"))
      .map((n) => (n.widgets || []).find((w) => w.name === "3dlabs_output")?.value ?? null);
    for (const type of ["execution_start", "execution_success", "execution_error", "execution_interrupted",
      "executed", "progress_text", "execution_cached", "b_preview", "b_preview_with_metadata"]) {
      api.addEventListener(type, (e) => {
        const d = e.detail || {};
        if (type === "progress_text") {
          // Newer frontends drop the status widget when the job ends: look while it is there.
          const id = String(d.nodeId ?? "");
          setTimeout(() => {
            const node = window.comfyAPI.app.app.graph?.getNodeById?.(id.split(":").pop());
            const widget = (node?.widgets || []).find((w) => w.name === "$$node-text-preview");
            if (widget?.value) window.__tdl.events.push({ type: "progress_text_shown", at: Date.now(), node: id });
            // The pack shows the status once, in its own box, and hides ComfyUI's one-line copy.
            const box = (node?.widgets || []).find((w) => w.name === "3dlabs_output");
            if (box) {
              window.__tdl.events.push({ type: "status_in_box", at: Date.now(), node: id, text: String(box.value ?? "").slice(0, 200),
                sent: String(d.text ?? "").slice(0, 200), comfyHidden: Boolean(!widget || widget.hidden || widget.options?.hidden) });
            }
          }, 0);
        }
        if (type.startsWith("b_preview")) {
          window.__tdl.events.push({ type, at: Date.now(), node: d.nodeId ?? d.displayNodeId ?? null });
          return;
        }
        window.__tdl.events.push({
          // Our own listener ran before this one (the extension registered first): the boxes as it left them.
          outputsAtStart: type === "execution_start" ? outputs() : undefined,
          nodes: type === "execution_cached" ? (d.nodes ?? []).map(String) : undefined,
          type, at: Date.now(), prompt_id: d.prompt_id ?? null, node: d.node ?? d.nodeId ?? d.node_id ?? null,
          text: type === "progress_text" ? String(d.text ?? "").slice(0, 300) : undefined,
          message: type === "execution_error" ? String(d.exception_message ?? "").slice(0, 500) : undefined,
          exceptionType: type === "execution_error" ? String(d.exception_type ?? "") : undefined,
        });
      });
    }
  });
}

async function queueAndWait(page) {
  const since = await page.evaluate(() => Date.now());
  // queuePrompt's boolean is not a reliable "queued" signal in frontend 1.27 (an empty node_errors
  // object reads as a refusal), so wait for the run's end, or for the dialog of a refused prompt.
  // node_errors of the accepted prompt: ComfyUI runs the valid outputs and drops the others.
  const nodeErrors = await page.evaluate(async () => {
    const { app } = window.comfyAPI.app;
    await app.queuePrompt(0, 1);
    return JSON.parse(JSON.stringify(app.lastNodeErrors ?? {}));
  });
  let end;
  try {
    const handle = await page.waitForFunction((t) => {
      const done = window.__tdl.events.find((e) => e.at >= t &&
        ["execution_success", "execution_error", "execution_interrupted"].includes(e.type));
      if (done) return done;
      const dialog = [...document.querySelectorAll(".p-dialog, [role='dialog'], [role='alertdialog']")]
        .find((d) => d.getClientRects().length);
      return dialog ? { type: "refused", dialogs: [dialog.innerText.slice(0, 800)] } : null;
    }, since, { timeout: RUN_TIMEOUT_MS, polling: 250 });
    end = await handle.jsonValue();
  } catch (err) {
    end = { type: "timeout", message: err.message.split("\n")[0] };
  }
  const events = await page.evaluate((t) => window.__tdl.events.filter((e) => e.at >= t), since);
  await page.waitForTimeout(800); // let the canvas paint the outputs
  return { end, events, nodeErrors };
}

/** What our nodes show and save: display values, progress text, and their serialized widgets. */
async function inspectOurNodes(page) {
  return page.evaluate(async () => {
    const { app } = window.comfyAPI.app;
    const serialized = app.graph.serialize();
    const prompt = await app.graphToPrompt();
    return app.graph.nodes.filter((n) => String(n.type).startsWith("3DLabs")).map((n) => {
      // Newer frontends give a node made in the page a string id and save it as a number.
      const saved = serialized.nodes.find((s) => String(s.id) === String(n.id)) || {};
      const find = (name) => (n.widgets || []).find((w) => w.name === name);
      return {
        id: n.id, type: n.type,
        widgetNames: (n.widgets || []).map((w) => w.name),
        serializableWidgets: (n.widgets || []).filter((w) => w.serialize !== false).map((w) => w.name),
        widgets_values: saved.widgets_values ?? null,
        promptInputs: Object.keys(prompt.output[n.id]?.inputs ?? {}),
        output: find("3dlabs_output")?.value ?? null,
        // Layout height (not scaled by the zoom); 0 when the renderer culls the node off screen.
        outputHeight: find("3dlabs_output")?.element?.offsetHeight ?? null,
        outputMarkedError: Boolean(find("3dlabs_output")?.element?.classList.contains("tdl-error")),
        outputMarkedSandbox: Boolean(find("3dlabs_output")?.element?.classList.contains("tdl-sandbox")),
        progressText: find("$$node-text-preview")?.value ?? null,
        progressHidden: Boolean(find("$$node-text-preview")?.hidden),
        projectPicker: find("project")?.value ?? null,
        // The pictures shown on the node, at the size the frontend's label gives (naturalWidth x naturalHeight).
        shownImages: [...(n.imgs || []), ...document.querySelectorAll(`[data-node-id='${n.id}'] img`)]
          .filter((img) => img.naturalWidth).map((img) => [img.naturalWidth, img.naturalHeight]),
      };
    });
  });
}

async function runTemplates(page) {
  const listing = await (await fetch(`${BASE}/api/workflow_templates`)).json();
  const names = (listing[MODULE] || []).slice().sort();
  results.templates = names;
  step(`templates of ${MODULE}: ${names.join(", ") || "(none)"}`);
  // Opened as on a 1600x900 window: each must open at a zoom where the classic renderer draws text.
  const viewport = page.viewportSize();
  await page.setViewportSize({ width: 1600, height: 900 });
  for (const name of names) {
    const how = await openTemplate(page, name);
    results.templatePath = results.templatePath === null || results.templatePath === how ? how : "mixed";
    await page.waitForFunction(() => window.comfyAPI.app.app.graph.nodes.length > 0, null, { timeout: 10000 });
    const afterLoad = await openDialogs(page);
    await page.waitForTimeout(300); // the fit of newer frontends may wait for a frame
    const openedScale = await page.evaluate(() => window.comfyAPI.app.app.canvas.ds.scale);
    step(`opened ${name} via ${how} at ${Math.round(openedScale * 100)}%; `
      + `${await page.evaluate(() => window.comfyAPI.app.app.graph.nodes.length)} nodes`);
    const { end, events, nodeErrors } = await queueAndWait(page);
    const dialogs = await openDialogs(page);
    const nodes = await inspectOurNodes(page);
    await fitView(page);
    const file = await shot(page, `workflow-${name}`);
    const graph = await page.evaluate(() => JSON.stringify(window.comfyAPI.app.app.graph.serialize()));
    results.workflows.push({ name, openedVia: how, openedScale, end, nodeErrors, dialogsAfterLoad: afterLoad, dialogsAfterRun: dialogs,
      executionErrors: events.filter((e) => e.type === "execution_error"), progressTexts: events.filter((e) => e.type === "progress_text").length,
      progressShown: events.filter((e) => e.type === "progress_text_shown").length,
      statusInBox: events.filter((e) => e.type === "status_in_box"),
      executed: events.filter((e) => e.type === "executed").map((e) => e.node), nodes, screenshot: file, graph });
    step(`ran ${name}: ${end.type} (${end.prompt_id ?? JSON.stringify(end.dialogs ?? end.message ?? "")})`);
    await closeDialogs(page);
  }
  await page.setViewportSize(viewport);
}

// --- saving through the UI ------------------------------------------------------------------

async function saveWorkflowThroughUi(page, name) {
  await closeDialogs(page);
  // Focus the canvas (not a node's text box, where Ctrl+S is the browser's) on an empty spot.
  await page.evaluate(() => document.activeElement?.blur?.());
  await page.mouse.click(1500, 140);
  await page.keyboard.press("Control+s");
  const input = page.locator(".prompt-dialog-content input, [role='dialog'] input[type='text'], [role='dialog'] input:not([type])").first();
  await input.waitFor({ timeout: 10000 });
  await input.fill(name);
  await input.press("Enter");
  await page.waitForTimeout(1000);
  const listing = await page.evaluate(async () => (await fetch("/api/userdata?dir=workflows&recurse=true")).json());
  const file = listing.find((f) => f.startsWith(name));
  if (!file) throw new Error(`the saved workflow ${name} is not in userdata: ${JSON.stringify(listing)}`);
  results.savedWorkflowFile = file;
  results.savedWorkflow = await page.evaluate(async (f) =>
    (await fetch(`/api/userdata/${encodeURIComponent(`workflows/${f}`)}`)).text(), file);
  step(`saved the workflow through the UI as workflows/${file}`);
}

// --- Load Project's dropdown ---------------------------------------------------------------

/** The picker's list once it holds projects (or whatever it holds after 20 s). */
async function waitForProjectList(page, id) {
  const read = () => page.evaluate((nodeId) => {
    const node = window.comfyAPI.app.app.graph.getNodeById(nodeId);
    return [...(node?.widgets?.find((w) => w.name === "project")?.options?.values ?? [])];
  }, id);
  await page.waitForFunction((nodeId) => {
    const node = window.comfyAPI.app.app.graph.getNodeById(nodeId);
    return (node?.widgets?.find((w) => w.name === "project")?.options?.values ?? []).some((v) => String(v).includes(" — "));
  }, id, { timeout: 20000, polling: 250 }).catch(() => {});
  return read();
}

/** Open the project dropdown the way a user does and pick the first project; returns the menu label. */
async function pickProjectThroughUi(page, id) {
  if (VUE) {
    // The Vue node's own select: the widget row named "project" on the node's DOM.
    const nodeEl = page.locator(`[data-node-id='${id}']`);
    await nodeEl.waitFor({ timeout: 10000 });
    const current = await page.evaluate((nodeId) => window.comfyAPI.app.app.graph.getNodeById(nodeId)
      .widgets.find((w) => w.name === "project").value, id);
    await nodeEl.locator("button, [role='combobox']", { hasText: current }).first().click({ timeout: 10000 });
    await page.waitForSelector("[role='option']", { timeout: 20000 });
    results.projectMenu = await page.$$eval("[role='option']", (es) => es.map((e) => e.textContent.trim()));
    step(`project dropdown (Vue node): ${results.projectMenu.join(" | ")}`);
    await shot(page, "load-project-dropdown");
    const entry = page.locator("[role='option']", { hasText: " — " }).first();
    const label = (await entry.textContent()).trim();
    await entry.click();
    await page.waitForTimeout(500);
    return label;
  }
  const point = await page.evaluate((nodeId) => {
    const { app } = window.comfyAPI.app;
    const node = app.graph.getNodeById(nodeId);
    const widget = node.widgets.find((w) => w.name === "project");
    const rect = app.canvas.canvas.getBoundingClientRect();
    const y = node.pos[1] + (widget.y ?? widget.last_y) + 10;
    const x = node.pos[0] + node.size[0] / 2;
    const [cx, cy] = app.canvas.ds.convertOffsetToCanvas([x, y]);
    return { x: rect.left + cx, y: rect.top + cy };
  }, id);
  await page.mouse.click(point.x, point.y);
  await page.waitForSelector(".litecontextmenu .litemenu-entry", { timeout: 20000 });
  results.projectMenu = await page.$$eval(".litecontextmenu .litemenu-entry", (es) => es.map((e) => e.textContent));
  step(`project dropdown: ${results.projectMenu.join(" | ")}`);
  await shot(page, "load-project-dropdown");
  const entry = page.locator(".litecontextmenu .litemenu-entry", { hasText: " — " }).first();
  const label = await entry.textContent();
  await entry.click();
  await page.waitForTimeout(300);
  return label;
}

async function loadProjectDropdown(page) {
  await closeDialogs(page);
  const info = await page.evaluate(async () => {
    const { app } = window.comfyAPI.app;
    // A new tab, so that the workflow saved above stays as it was.
    await app.extensionManager.command.execute("Comfy.NewBlankWorkflow");
    app.graph.clear();
    const node = window.LiteGraph.createNode("3DLabsLoadProject");
    node.pos = [120, 120];
    app.graph.add(node);
    const save = window.LiteGraph.createNode("SaveImage");
    save.pos = [620, 120];
    app.graph.add(save);
    save.widgets.find((w) => w.name === "filename_prefix").value = "tdl_e2e_project";
    node.connect(2, save, save.findInputSlot("images"));
    app.canvas.ds.offset = [0, 0];
    app.canvas.ds.scale = 1;
    app.canvas.setDirty(true, true);
    app.canvas.draw(true, true);
    return { id: node.id };
  });
  // The list is loaded when the node is made, not on a click (the Vue renderer sends none).
  results.projectValuesBeforeClick = await waitForProjectList(page, info.id);
  step(`project list before any click: ${results.projectValuesBeforeClick.join(" | ")}`);
  const label = await pickProjectThroughUi(page, info.id);
  results.projectPicked = await page.evaluate((id) => {
    const node = window.comfyAPI.app.app.graph.getNodeById(id);
    return { label: node.widgets.find((w) => w.name === "project").value, project_id: node.widgets.find((w) => w.name === "project_id").value };
  }, info.id);
  step(`picked ${label} -> project_id ${results.projectPicked.project_id}`);
  results.projectPicked.menuLabel = label;
  const { end, events, nodeErrors } = await queueAndWait(page);
  const nodes = await inspectOurNodes(page);
  const file = await shot(page, "load-project-after-run");
  results.loadProject = { label, end, nodeErrors, nodes, dialogsAfterRun: await openDialogs(page), screenshot: file,
    executionErrors: events.filter((e) => e.type === "execution_error"),
    graph: await page.evaluate(() => JSON.stringify(window.comfyAPI.app.app.graph.serialize())) };
}

// --- a node made fresh pays once per change, not once per Run --------------------------------

async function sandboxJobs() {
  const stats = await (await fetch(`${SANDBOX}/__sandbox/stats`)).json();
  return { image: stats.jobs_created.image, posts: stats.requests["POST /api/images/generate"] ?? 0 };
}

/** A new blank workflow: a fresh Image Generate (made as the node search makes it) into PreviewImage. */
async function imageGenerateToPreview(page, prompt) {
  await closeDialogs(page);
  return page.evaluate(async (text) => {
    const { app } = window.comfyAPI.app;
    await app.extensionManager.command.execute("Comfy.NewBlankWorkflow");
    app.graph.clear();
    // What the node search does: LiteGraph.createNode, then graph.add.
    const node = window.LiteGraph.createNode("3DLabsImageGenerate");
    node.pos = [120, 120];
    app.graph.add(node);
    const preview = window.LiteGraph.createNode("PreviewImage");
    preview.pos = [620, 120];
    app.graph.add(preview);
    node.connect(0, preview, preview.findInputSlot("images"));
    node.widgets.find((w) => w.name === "prompt").value = text;
    return node.id;
  }, prompt);
}

async function seedOf(page, id) {
  return page.evaluate((nodeId) => {
    const seed = window.comfyAPI.app.app.graph.getNodeById(nodeId).widgets.find((w) => w.name === "seed");
    return { control: seed.linkedWidgets?.[0]?.value ?? null, seed: seed.value };
  }, id);
}

async function freshNodeRunsOnce(page) {
  const id = await imageGenerateToPreview(page, `a kite made from the node search ${Date.now()}`);
  const made = { id, ...(await seedOf(page, id)) };
  step(`fresh Image Generate #${made.id}: control_after_generate ${made.control}, seed ${made.seed}`);
  const before = await sandboxJobs();
  const runs = [];
  for (let i = 0; i < 2; i++) {
    const { end, nodeErrors } = await queueAndWait(page);
    const after = await seedOf(page, made.id);
    runs.push({ end, nodeErrors, ...after });
    step(`queued the unchanged graph (${i + 1}): ${end.type}, seed ${after.seed}, control ${after.control}`);
  }
  const after = await sandboxJobs();
  // A saved choice wins over the pin: reload the graph with "randomize" saved and read it back.
  const loadedControl = await page.evaluate(async (id) => {
    const { app } = window.comfyAPI.app;
    const graph = app.graph.serialize();
    const saved = graph.nodes.find((n) => String(n.id) === String(id));
    const widgets = app.graph.getNodeById(id).widgets.filter((w) => w.serialize !== false);
    saved.widgets_values[widgets.findIndex((w) => w.name === "control_after_generate")] = "randomize";
    await app.loadGraphData(graph, true, true, "tdl-e2e-saved-randomize");
    return app.graph.getNodeById(id).widgets.find((w) => w.name === "control_after_generate")?.value ?? null;
  }, made.id);
  step(`reloaded with "randomize" saved: the control reads ${loadedControl}`);
  results.freshNode = { created: made, runs, jobsBefore: before, jobsAfter: after, loadedControl };
}

// --- what the nodes say about a run ---------------------------------------------------------

async function sandboxFaults(flags) {
  const r = await fetch(`${SANDBOX}/__sandbox/faults`, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(flags) });
  if (!r.ok) throw new Error(`sandbox faults: ${r.status} ${await r.text()}`);
}

/** The last workflow run again unchanged: ComfyUI reuses our nodes, and they say so. */
async function cachedRerun(page) {
  const { end, events } = await queueAndWait(page);
  const cachedNodes = events.filter((e) => e.type === "execution_cached").flatMap((e) => e.nodes ?? []);
  const starts = events.filter((e) => e.type === "execution_start");
  const nodes = (await inspectOurNodes(page)).filter((n) => cachedNodes.includes(String(n.id)));
  await shot(page, "cached-rerun");
  step(`re-ran unchanged: ${end.type}; cached ${cachedNodes.join(",")}; our outputs: ${nodes.map((n) => JSON.stringify(String(n.output).slice(0, 60))).join(" ")}`);
  return { end, cachedNodes, nodes, outputsAtStart: starts.length ? starts[starts.length - 1].outputsAtStart : null };
}

/** A template queued again after other prompts (its nodes run, but collect what was paid for: nothing is
 * paid), then opened anew and queued: ComfyUI reuses every node from its cache, and each says so with the
 * result it stands for. Once in this page (the extension remembers results), once after a reload (only the
 * core can say it again: current cores resend a cached node's output when the node asks). */
async function reopenedTemplateCached(page) {
  const name = "Topic to storyboard";
  const reopened = { name };
  const load = (title) => page.evaluate(async ({ module, name, title }) => {
    const { app } = window.comfyAPI.app;
    const json = await (await fetch(`/api/workflow_templates/${module}/${name}.json`)).json();
    await app.loadGraphData(json, true, true, title);
  }, { module: MODULE, name, title });
  for (const when of ["again", "same page", "after reload"]) {
    if (when === "after reload") {
      await page.reload({ waitUntil: "domcontentloaded" });
      await waitForComfy(page);
      await installRecorders(page);
    }
    await closeDialogs(page);
    await load(`tdl-e2e-reopened-${when.replace(" ", "-")}`);
    const { end, events } = await queueAndWait(page);
    const cachedNodes = events.filter((e) => e.type === "execution_cached").flatMap((e) => e.nodes ?? []);
    const nodes = (await inspectOurNodes(page)).map((n) => ({ id: n.id, type: n.type, output: n.output,
      cached: cachedNodes.includes(String(n.id)) }));
    reopened[when] = { end, nodes };
    await shot(page, `reopened-${when.replace(" ", "-")}`);
    step(`${name} (${when}): ${end.type}; ${nodes.map((n) => `${n.type}${n.cached ? " (cached)" : ""}: `
      + JSON.stringify(String(n.output).slice(0, 70))).join("; ")}`);
  }
  return reopened;
}

/** A job that fails: the pack's message must be on the node, not only in a toast or a log. */
async function failingRun(page) {
  const id = await imageGenerateToPreview(page, `a job that fails ${Date.now()}`);
  await sandboxFaults({ fail_jobs: true });
  let run;
  try {
    run = await queueAndWait(page);
  } finally {
    await sandboxFaults({ fail_jobs: false });
  }
  const error = run.events.find((e) => e.type === "execution_error");
  const [node] = (await inspectOurNodes(page)).filter((n) => String(n.id) === String(id));
  await shot(page, "failed-node");
  const failed = { end: run.end, message: error?.message ?? "", output: node?.output ?? "", markedError: node?.outputMarkedError,
    outputHeight: node?.outputHeight };
  step(`failing job: ${run.end.type}; the node says: ${String(failed.output).slice(0, 160)}`);
  await page.keyboard.press("Escape");
  return failed;
}

// --- live previews ----------------------------------------------------------------------------

async function slowSandbox(seconds) {
  if (!CONTROL) return false;
  const text = JSON.stringify({ job_seconds: seconds, at: Date.now() });
  fs.writeFileSync(CONTROL, text);
  const ack = CONTROL.replace(/\.json$/, ".ack");
  for (let i = 0; i < 50; i++) {
    if (fs.existsSync(ack) && fs.readFileSync(ack, "utf8") === text) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** Image Generate with several prompts on slow sandbox jobs: previews show before the prompt ends. */
async function previewsWhileRunning(page) {
  await closeDialogs(page);
  const name = "Topic to storyboard";
  if (!(results.templates || []).includes(name)) {
    results.previews = { skipped: `no template ${name}` };
    return;
  }
  const imageId = await page.evaluate(async ({ module, name }) => {
    const { app } = window.comfyAPI.app;
    const json = await (await fetch(`/api/workflow_templates/${module}/${name}.json`)).json();
    await app.loadGraphData(json, true, true, "tdl-e2e-previews");
    const story = app.graph.nodes.find((n) => n.type === "3DLabsStory");
    const topic = story?.widgets?.find((w) => w.name === "topic");
    if (topic) topic.value = `A paper boat crossing a rain gutter, take ${Date.now()}`; // new inputs: no cache
    return app.graph.nodes.find((n) => n.type === "3DLabsImageGenerate")?.id ?? null;
  }, { module: MODULE, name });
  const slowed = await slowSandbox(4);
  step(`previews: sandbox jobs slowed to 4 s (${slowed ? "acknowledged" : "NOT acknowledged"})`);
  // Watch the node while it runs: an image preview on it (classic: node.imgs / app.nodePreviewImages;
  // Vue: an <img> in the node's element).
  await page.evaluate((id) => {
    window.__tdl.previewSeen = null;
    const timer = setInterval(() => {
      const { app } = window.comfyAPI.app;
      const node = app.graph.getNodeById(id);
      const seen = (node?.imgs?.length ?? 0) > 0 || Boolean(app.nodePreviewImages?.[String(id)]?.length)
        || Boolean(document.querySelector(`[data-node-id='${id}'] img`));
      if (seen && !window.__tdl.previewSeen) window.__tdl.previewSeen = Date.now();
    }, 100);
    window.__tdl.stopPreviewWatch = () => clearInterval(timer);
  }, imageId);
  let run;
  try {
    run = await queueAndWait(page);
  } finally {
    await slowSandbox(0.5);
  }
  const seenAt = await page.evaluate(() => {
    window.__tdl.stopPreviewWatch();
    return window.__tdl.previewSeen;
  });
  const endAt = run.events.find((e) => ["execution_success", "execution_error"].includes(e.type))?.at ?? Date.now();
  // After the run the node shows the pictures themselves, labelled with their real size (not the previews').
  await page.waitForFunction((id) => {
    const { app } = window.comfyAPI.app;
    const imgs = [...(app.graph.getNodeById(id)?.imgs ?? []), ...document.querySelectorAll(`[data-node-id='${id}'] img`)];
    return imgs.some((img) => img.naturalWidth > 512);
  }, imageId, { timeout: 10000, polling: 250 }).catch(() => {});
  const shownAfter = (await inspectOurNodes(page)).find((n) => String(n.id) === String(imageId))?.shownImages ?? [];
  const events = run.events.filter((e) => e.type.startsWith("b_preview")).map((e) => ({ type: e.type, at: e.at, node: e.node }));
  results.previews = { slowed, imageId, end: run.end, endAt, events, seenAt, shownAfter,
    shownOnNode: Boolean(seenAt && seenAt < endAt), executedAt: run.events.find((e) => e.type === "executed" && String(e.node) === String(imageId))?.at ?? null };
  await fitView(page);
  await shot(page, "previews-after-run");
  step(`previews: ${events.length} preview messages, ${events.filter((e) => e.at < endAt).length} before the end; `
    + `on the node ${seenAt ? `${endAt - seenAt} ms before the end` : "never"}`);
}

// --- the node search ---------------------------------------------------------------------------

/** What the node search box lists for a few words a user types: the pack's nodes must be there. Current
 * cores send each node's SEARCH_ALIASES ("topic to video"); older ones only its names. */
async function nodeSearch(page) {
  await closeDialogs(page);
  const found = {};
  for (const words of ["topic to video", "storyboard"]) {
    try {
      await page.evaluate(() => window.comfyAPI.app.app.extensionManager.command.execute("Workspace.SearchBox.Toggle"));
      await page.waitForTimeout(500);
      await page.keyboard.type(words);
      await page.waitForFunction(() => document.querySelectorAll("[role='option']").length > 0, null, { timeout: 5000 })
        .catch(() => {});
      await page.waitForTimeout(600); // the list settles after the last key
      found[words] = await page.$$eval("[role='option']", (os) => os.slice(0, 8).map((o) => o.innerText.split("\n")[0].trim()));
      if (words === "topic to video") await shot(page, "node-search-topic-to-video");
    } catch (err) {
      found[words] = { error: err.message.split("\n")[0] };
    }
    await page.keyboard.press("Escape");
    await page.waitForTimeout(300);
  }
  results.nodeSearch = found;
  step(`node search: ${JSON.stringify(found)}`);
}

// --- the node help panel ----------------------------------------------------------------------

async function nodeHelp(page) {
  await closeDialogs(page);
  const help = { available: false, via: null, shown: false };
  help.available = await page.evaluate(() => {
    const pinia = document.querySelector("#vue-app")?.__vue_app__?.config?.globalProperties?.$pinia;
    return Boolean(pinia?._s?.get("nodeHelp") || pinia?._s?.has?.("nodeHelp"));
  });
  const waitText = async (ms) => page.waitForFunction((t) => document.body.innerText.includes(t), HELP_TEXT.slice(0, 50),
    { timeout: ms }).then(() => true).catch(() => false);
  // The selection toolbox's help button (newer frontends), on a selected Image Generate.
  try {
    await page.evaluate(async () => {
      const { app } = window.comfyAPI.app;
      await app.extensionManager.command.execute("Comfy.NewBlankWorkflow");
      app.graph.clear();
      const node = window.LiteGraph.createNode("3DLabsImageGenerate");
      node.pos = [200, 200];
      app.graph.add(node);
      app.canvas.selectNode(node);
      app.canvas.setDirty(true, true);
    });
    await page.waitForTimeout(800);
    const button = page.locator(".selection-toolbox button[aria-label*='help' i], .selection-toolbox button[aria-label*='info' i],"
      + " [data-testid='selection-toolbox'] button[aria-label*='help' i], [data-testid='selection-toolbox'] button[aria-label*='info' i]").first();
    if (await button.count()) {
      help.available = true;
      await button.click({ timeout: 5000 });
      if (await waitText(10000)) {
        help.via = "selection toolbox";
        help.shown = true;
      }
    }
  } catch (err) {
    help.toolboxError = err.message.split("\n")[0];
  }
  // Else the node library's help for the node (what its "?" button opens), through the frontend's store.
  if (!help.shown && help.available) {
    await page.evaluate(async () => {
      const { app } = window.comfyAPI.app;
      const pinia = document.querySelector("#vue-app").__vue_app__.config.globalProperties.$pinia;
      const defs = pinia._s.get("nodeDef");
      const def = defs?.nodeDefsByName?.["3DLabsImageGenerate"];
      const tab = app.extensionManager.sidebarTab;
      if (tab?.activeSidebarTabId !== "node-library") await app.extensionManager.command.execute("Workspace.ToggleSidebarTab.node-library");
      pinia._s.get("nodeHelp").openHelp(def);
    }).catch((err) => {
      help.storeError = err.message.split("\n")[0];
    });
    if (await waitText(15000)) {
      help.via = "node library help (nodeHelp store)";
      help.shown = true;
    }
  }
  if (help.available) await shot(page, "node-help");
  help.text = help.shown ? HELP_TEXT.slice(0, 50) : null;
  results.help = help;
  step(`node help: ${JSON.stringify(help)}`);
  await page.keyboard.press("Escape");
}

// --- after a page reload ----------------------------------------------------------------------

/** Load Project in the open workflow, the page reloaded: its list fills without a click. */
async function pickerAfterReload(page) {
  await closeDialogs(page);
  const marker = `tdl-reload-${Date.now()}`;
  const graph = await page.evaluate(async (title) => {
    const { app } = window.comfyAPI.app;
    await app.extensionManager.command.execute("Comfy.NewBlankWorkflow");
    app.graph.clear();
    const node = window.LiteGraph.createNode("3DLabsLoadProject");
    node.pos = [120, 120];
    node.title = title;
    app.graph.add(node);
    app.graph.setDirtyCanvas(true, true);
    app.graph.change?.();
    return app.graph.serialize();
  }, marker);
  // The frontend keeps the open workflow in the browser's storage for a reload: wait until it has.
  await page.waitForFunction((m) => [localStorage, sessionStorage].some((store) =>
    Object.keys(store).some((k) => String(store.getItem(k)).includes(m))), marker, { timeout: 15000, polling: 250 })
    .catch(() => step("the open workflow was not seen in the browser's storage before the reload"));
  await page.reload({ waitUntil: "domcontentloaded" });
  await waitForComfy(page);
  let via = "page reload";
  let id = await page.evaluate((m) => window.comfyAPI.app.app.graph.nodes.find((n) => n.title === m)?.id ?? null, marker);
  if (id === null) {
    // Not restored by this frontend: open the same workflow in the reloaded page instead.
    via = "page reload, then app.loadGraphData";
    id = await page.evaluate(async ({ g, m }) => {
      const { app } = window.comfyAPI.app;
      await app.loadGraphData(g, true, true, "tdl-e2e-reload");
      return app.graph.nodes.find((n) => n.title === m)?.id ?? null;
    }, { g: graph, m: marker });
  }
  const values = id === null ? [] : await waitForProjectList(page, id);
  let menu = null;
  if (VUE && id !== null) {
    const current = await page.evaluate((nodeId) => window.comfyAPI.app.app.graph.getNodeById(nodeId)
      .widgets.find((w) => w.name === "project").value, id);
    await page.locator(`[data-node-id='${id}'] button, [data-node-id='${id}'] [role='combobox']`, { hasText: current }).first()
      .click({ timeout: 10000 }).catch(() => {});
    await page.waitForSelector("[role='option']", { timeout: 10000 }).catch(() => {});
    menu = await page.$$eval("[role='option']", (es) => es.map((e) => e.textContent.trim()));
    await page.keyboard.press("Escape");
  }
  results.afterReload = { found: id !== null, via, values, menu };
  step(`after a reload (${via}): Load Project lists ${values.length} entries${menu ? `; its Vue dropdown: ${menu.join(" | ")}` : ""}`);
}

async function waitForComfy(page) {
  await page.waitForFunction(() => window.app?.graph && window.comfyAPI?.app?.app?.extensions
    ?.some((e) => e.name === "3DLabs.Nodes"), null, { timeout: 90000, polling: 250 });
  await page.waitForTimeout(1500);
}

// --- main ------------------------------------------------------------------------------------

(async () => {
  if (!BASE || !TOKEN || !OUT) throw new Error("COMFY_URL, TDL_TOKEN and TDL_OUT are required");
  fs.mkdirSync(OUT, { recursive: true });
  await postSetting("Comfy.TutorialCompleted", true);
  await postSetting("Comfy.Notification.ShowVersionUpdates", false);
  // Full-detail nodes at any zoom, so that fitted screenshots of wide workflows stay readable.
  await postSetting("LiteGraph.Canvas.MinFontSizeForLOD", 0);
  // Newer frontends: the Vue node renderer ("Modern Node Design") on or off; older ones ignore it.
  await postSetting("Comfy.VueNodes.Enabled", VUE);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  let failed = null;
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    page.on("dialog", (d) => d.accept().catch(() => {})); // a reload's "leave the page?" must not stop it
    page.on("pageerror", (e) => results.pageErrors.push(String(e.stack || e.message).slice(0, 800)));
    page.on("console", (m) => {
      if (m.type() === "error") results.consoleErrors.push(m.text().slice(0, 500));
      if (/deprecat/i.test(m.text())) {
        const where = m.location()?.url ?? "";
        const line = `${m.text().slice(0, 300)}${where ? ` @ ${where}` : ""}`;
        if (!results.deprecations.includes(line)) results.deprecations.push(line);
      }
    });
    page.on("response", (r) => { if (r.status() >= 400) results.httpErrors.push(`${r.status()} ${r.request().method()} ${r.url()}`); });
    await page.goto(`${BASE}/`, { waitUntil: "domcontentloaded", timeout: 60000 });
    await waitForComfy(page);
    Object.assign(results, await page.evaluate(() => ({
      frontendVersion: window.__COMFYUI_FRONTEND_VERSION__ ?? null,
      vueNodes: Boolean(window.comfyAPI.app.app.extensionManager?.setting?.get("Comfy.VueNodes.Enabled")),
    })));
    step(`ComfyUI loaded with the 3DLabs extension (frontend ${results.frontendVersion}, Vue nodes ${results.vueNodes})`);
    await installRecorders(page);
    await newUserSettings(page);
    await noTokenRun(page);
    await sandboxThenCustomUrl(page);
    await setTokenThroughSettings(page);
    if (FALLBACK_DIR) await writeFallbackWorkflow(page);
    await runTemplates(page);
    results.nodeFeedback = { cached: await cachedRerun(page) };
    results.nodeFeedback.clearedAtStart = results.nodeFeedback.cached.outputsAtStart;
    results.nodeFeedback.reopened = await reopenedTemplateCached(page);
    results.nodeFeedback.failed = await failingRun(page);
    await saveWorkflowThroughUi(page, "tdl-e2e-saved");
    await loadProjectDropdown(page);
    if (SANDBOX) await freshNodeRunsOnce(page);
    await previewsWhileRunning(page);
    await nodeSearch(page);
    await nodeHelp(page);
    await pickerAfterReload(page);
    results.localStorage = await page.evaluate(() => Object.fromEntries(Object.entries(localStorage)));
    results.sessionStorage = await page.evaluate(() => Object.fromEntries(Object.entries(sessionStorage)));
    results.finalGraph = await page.evaluate(() => JSON.stringify(window.comfyAPI.app.app.graph.serialize()));
  } catch (err) {
    failed = err;
    results.errors.push(String(err.stack || err).slice(0, 3000));
    try {
      const pages = browser.contexts().flatMap((c) => c.pages());
      if (pages[0]) await shot(pages[0], "failure");
    } catch { /* the failure itself is what matters */ }
  } finally {
    fs.writeFileSync(path.join(OUT, "results.json"), JSON.stringify(results, null, 2));
    await browser.close();
  }
  if (failed) {
    console.error(`E2E FAILED: ${failed.message}`);
    process.exit(1);
  }
  console.log("E2E OK");
})().catch((err) => {
  console.error("E2E FAILED:", err);
  process.exit(1);
});
