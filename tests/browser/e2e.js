// Drives a real ComfyUI in headless Chromium for tests/test_browser_e2e.py (playwright-core).
//
// Owns the browser half of the browser test: set the token through the 3DLabs settings panel,
// open every template of the pack through the template browser and run it, save a workflow through
// the UI, use Load Project's dropdown, make Image Generate the way the node search does and queue it
// twice unchanged (counting the sandbox's jobs), take screenshots, and write everything the Python
// side checks for token leaks into results.json. It never writes the token itself anywhere.
//
// Environment: COMFY_URL, TDL_TOKEN (the secret to set), TDL_OUT (screenshots and results.json),
// TDL_SANDBOX_URL (the sandbox's origin, for its /__sandbox/stats job counters),
// TDL_MODULE (the pack's folder name), TDL_FALLBACK_DIR (optional: write a small workflow built in
// the page there when the pack ships no example workflows), PLAYWRIGHT_CORE_DIR, CHROMIUM.
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
const RUN_TIMEOUT_MS = Number(process.env.TDL_RUN_TIMEOUT_MS || 180000);
const SANDBOX = process.env.TDL_SANDBOX_URL || "";

const results = { steps: [], workflows: [], errors: [], pageErrors: [], consoleErrors: [], httpErrors: [], templatePath: null };

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
  return page.evaluate(() => [...document.querySelectorAll(".p-dialog")]
    .filter((d) => d.offsetParent !== null || d.getClientRects().length)
    .map((d) => d.innerText.slice(0, 500)));
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
    await page.click(".comfyui-logo-wrapper", { timeout: 5000 });
    await page.locator(".comfy-command-menu .p-menubar-item-label", { hasText: /^Settings$/ }).first().click({ timeout: 5000 });
    await page.waitForSelector(".settings-container", { timeout: 10000 });
    return "menu";
  } catch (err) {
    step(`settings via the menu failed (${err.message.split("\n")[0]}); trying Ctrl+,`);
  }
  await page.keyboard.press("Escape");
  await page.click("#graph-canvas", { position: { x: 640, y: 400 } }).catch(() => {});
  await page.keyboard.press("Control+Comma");
  await page.waitForSelector(".settings-container", { timeout: 10000 });
  return "keyboard";
}

async function setTokenThroughSettings(page) {
  const how = await openSettings(page);
  step(`settings dialog opened (${how})`);
  await page.locator(".settings-sidebar [role='option']", { hasText: /^3DLabs$/ }).first().click();
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

  await page.click("[data-tdl='test-button']");
  await page.waitForFunction(() => {
    const m = document.querySelector("[data-tdl='test'] .tdl-msg");
    return m && m.innerText && !m.innerText.startsWith("Testing");
  }, null, { timeout: 30000 });
  results.testConnection = await page.locator("[data-tdl='test'] .tdl-msg").innerText();
  step(`test connection: ${results.testConnection}`);
  await page.waitForFunction(() => {
    const s = document.querySelector("select.tdl-workspace");
    return s && !s.disabled && s.options.length > 1;
  }, null, { timeout: 15000 }).catch(() => step("workspace list did not fill"));
  results.workspaceOptions = await page.$$eval("select.tdl-workspace option", (os) => os.map((o) => o.textContent));
  await page.waitForTimeout(300);
  await shot(page, "settings-3dlabs");
  await page.keyboard.press("Escape");
  await page.waitForSelector(".settings-container", { state: "detached", timeout: 10000 }).catch(() => {});
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
  await page.click(".templates-tab-button", { timeout: 10000 });
  await page.waitForSelector("[data-testid='template-workflows-content']", { timeout: 15000 });
  // The side nav lists custom-node templates under the pack's folder name.
  await page.locator("[data-testid='template-workflows-content'] li, [data-testid='template-workflows-content'] [role='option'], [data-testid='template-workflows-content'] a, [data-testid='template-workflows-content'] div",
    { hasText: new RegExp(`^${MODULE.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`) }).last().click({ timeout: 10000 });
  const card = page.locator(`[data-testid='template-workflow-${name}']`);
  await card.waitFor({ timeout: 15000 });
  if (!results.templateBrowserShot) results.templateBrowserShot = await shot(page, "template-browser");
  await card.click();
  await page.waitForSelector("[data-testid='template-workflows-content']", { state: "detached", timeout: 15000 });
}

async function openTemplate(page, name) {
  try {
    await openTemplateThroughUi(page, name);
    return "ui";
  } catch (err) {
    step(`template browser failed for ${name} (${err.message.split("\n")[0]}); loading through /api/workflow_templates`);
    await closeDialogs(page);
    await page.evaluate(async ({ module, name }) => {
      const { app } = window.comfyAPI.app;
      const json = await (await fetch(`/api/workflow_templates/${module}/${name}.json`)).json();
      await app.loadGraphData(json, true, true, name);
    }, { module: MODULE, name });
    return "api";
  }
}

async function installRecorders(page) {
  await page.evaluate(() => {
    const { api } = window.comfyAPI.api;
    window.__tdl = { events: [] };
    for (const type of ["execution_start", "execution_success", "execution_error", "execution_interrupted",
      "executed", "progress_text"]) {
      api.addEventListener(type, (e) => {
        const d = e.detail || {};
        window.__tdl.events.push({
          type, at: Date.now(), prompt_id: d.prompt_id ?? null, node: d.node ?? d.nodeId ?? d.node_id ?? null,
          text: type === "progress_text" ? String(d.text ?? "").slice(0, 300) : undefined,
          message: type === "execution_error" ? String(d.exception_message ?? "").slice(0, 500) : undefined,
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
      const dialog = [...document.querySelectorAll(".p-dialog")].find((d) => d.getClientRects().length);
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
      const saved = serialized.nodes.find((s) => s.id === n.id) || {};
      const find = (name) => (n.widgets || []).find((w) => w.name === name);
      return {
        id: n.id, type: n.type,
        widgetNames: (n.widgets || []).map((w) => w.name),
        serializableWidgets: (n.widgets || []).filter((w) => w.serialize !== false).map((w) => w.name),
        widgets_values: saved.widgets_values ?? null,
        promptInputs: Object.keys(prompt.output[n.id]?.inputs ?? {}),
        output: find("3dlabs_output")?.value ?? null,
        outputMarkedSandbox: Boolean(find("3dlabs_output")?.element?.classList.contains("tdl-sandbox")),
        progressText: find("$$node-text-preview")?.value ?? null,
        projectPicker: find("project")?.value ?? null,
      };
    });
  });
}

async function runTemplates(page) {
  const listing = await (await fetch(`${BASE}/api/workflow_templates`)).json();
  const names = (listing[MODULE] || []).slice().sort();
  results.templates = names;
  step(`templates of ${MODULE}: ${names.join(", ") || "(none)"}`);
  for (const name of names) {
    const how = await openTemplate(page, name);
    results.templatePath = results.templatePath === null || results.templatePath === how ? how : "mixed";
    await page.waitForFunction(() => window.comfyAPI.app.app.graph.nodes.length > 0, null, { timeout: 10000 });
    const afterLoad = await openDialogs(page);
    step(`opened ${name} via ${how}; ${await page.evaluate(() => window.comfyAPI.app.app.graph.nodes.length)} nodes`);
    const { end, events, nodeErrors } = await queueAndWait(page);
    const dialogs = await openDialogs(page);
    const nodes = await inspectOurNodes(page);
    await fitView(page);
    const file = await shot(page, `workflow-${name}`);
    const graph = await page.evaluate(() => JSON.stringify(window.comfyAPI.app.app.graph.serialize()));
    results.workflows.push({ name, openedVia: how, end, nodeErrors, dialogsAfterLoad: afterLoad, dialogsAfterRun: dialogs,
      executionErrors: events.filter((e) => e.type === "execution_error"), progressTexts: events.filter((e) => e.type === "progress_text").length,
      executed: events.filter((e) => e.type === "executed").map((e) => e.node), nodes, screenshot: file, graph });
    step(`ran ${name}: ${end.type} (${end.prompt_id ?? JSON.stringify(end.dialogs ?? end.message ?? "")})`);
    await closeDialogs(page);
  }
}

// --- saving through the UI ------------------------------------------------------------------

async function saveWorkflowThroughUi(page, name) {
  await closeDialogs(page);
  await page.click("#graph-canvas", { position: { x: 700, y: 720 } });
  await page.keyboard.press("Control+s");
  const input = page.locator(".prompt-dialog-content input");
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
  await page.waitForTimeout(500);
  const point = await page.evaluate((id) => {
    const { app } = window.comfyAPI.app;
    const node = app.graph.getNodeById(id);
    const widget = node.widgets.find((w) => w.name === "project");
    const rect = app.canvas.canvas.getBoundingClientRect();
    const y = node.pos[1] + (widget.y ?? widget.last_y) + 10;
    const x = node.pos[0] + node.size[0] / 2;
    const [cx, cy] = app.canvas.ds.convertOffsetToCanvas([x, y]);
    return { x: rect.left + cx, y: rect.top + cy };
  }, info.id);
  await page.mouse.click(point.x, point.y);
  await page.waitForSelector(".litecontextmenu .litemenu-entry", { timeout: 20000 });
  results.projectMenu = await page.$$eval(".litecontextmenu .litemenu-entry", (es) => es.map((e) => e.textContent));
  step(`project dropdown: ${results.projectMenu.join(" | ")}`);
  await shot(page, "load-project-dropdown");
  const entry = page.locator(".litecontextmenu .litemenu-entry", { hasText: " — " }).first();
  const label = await entry.textContent();
  await entry.click();
  await page.waitForTimeout(300);
  results.projectPicked = await page.evaluate((id) => {
    const node = window.comfyAPI.app.app.graph.getNodeById(id);
    return { label: node.widgets.find((w) => w.name === "project").value, project_id: node.widgets.find((w) => w.name === "project_id").value };
  }, info.id);
  step(`picked ${label} -> project_id ${results.projectPicked.project_id}`);
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

async function freshNodeRunsOnce(page) {
  await closeDialogs(page);
  const made = await page.evaluate(async () => {
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
    node.widgets.find((w) => w.name === "prompt").value = `a kite made from the node search ${Date.now()}`;
    const seed = node.widgets.find((w) => w.name === "seed");
    return { id: node.id, control: seed.linkedWidgets?.[0]?.value ?? null, seed: seed.value };
  });
  step(`fresh Image Generate #${made.id}: control_after_generate ${made.control}, seed ${made.seed}`);
  const before = await sandboxJobs();
  const runs = [];
  for (let i = 0; i < 2; i++) {
    const { end, nodeErrors } = await queueAndWait(page);
    const after = await page.evaluate((id) => {
      const seed = window.comfyAPI.app.app.graph.getNodeById(id).widgets.find((w) => w.name === "seed");
      return { control: seed.linkedWidgets?.[0]?.value ?? null, seed: seed.value };
    }, made.id);
    runs.push({ end, nodeErrors, ...after });
    step(`queued the unchanged graph (${i + 1}): ${end.type}, seed ${after.seed}, control ${after.control}`);
  }
  const after = await sandboxJobs();
  // A saved choice wins over the pin: reload the graph with "randomize" saved and read it back.
  const loadedControl = await page.evaluate(async (id) => {
    const { app } = window.comfyAPI.app;
    const graph = app.graph.serialize();
    const saved = graph.nodes.find((n) => n.id === id);
    const widgets = app.graph.getNodeById(id).widgets.filter((w) => w.serialize !== false);
    saved.widgets_values[widgets.findIndex((w) => w.name === "control_after_generate")] = "randomize";
    await app.loadGraphData(graph, true, true, "tdl-e2e-saved-randomize");
    return app.graph.getNodeById(id).widgets.find((w) => w.name === "control_after_generate")?.value ?? null;
  }, made.id);
  step(`reloaded with "randomize" saved: the control reads ${loadedControl}`);
  results.freshNode = { created: made, runs, jobsBefore: before, jobsAfter: after, loadedControl };
}

// --- main ------------------------------------------------------------------------------------

(async () => {
  if (!BASE || !TOKEN || !OUT) throw new Error("COMFY_URL, TDL_TOKEN and TDL_OUT are required");
  fs.mkdirSync(OUT, { recursive: true });
  await postSetting("Comfy.TutorialCompleted", true);
  await postSetting("Comfy.Notification.ShowVersionUpdates", false);
  // Full-detail nodes at any zoom, so that fitted screenshots of wide workflows stay readable.
  await postSetting("LiteGraph.Canvas.MinFontSizeForLOD", 0);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  let failed = null;
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    page.on("pageerror", (e) => results.pageErrors.push(String(e.message).slice(0, 500)));
    page.on("console", (m) => { if (m.type() === "error") results.consoleErrors.push(m.text().slice(0, 500)); });
    page.on("response", (r) => { if (r.status() >= 400) results.httpErrors.push(`${r.status()} ${r.request().method()} ${r.url()}`); });
    await page.goto(`${BASE}/`, { waitUntil: "domcontentloaded", timeout: 60000 });
    await page.waitForFunction(() => window.app?.graph && window.comfyAPI?.app?.app?.extensions
      ?.some((e) => e.name === "3DLabs.Nodes"), null, { timeout: 60000, polling: 250 });
    await page.waitForTimeout(1000);
    step("ComfyUI loaded with the 3DLabs extension");
    await installRecorders(page);
    await setTokenThroughSettings(page);
    if (FALLBACK_DIR) await writeFallbackWorkflow(page);
    await runTemplates(page);
    await saveWorkflowThroughUi(page, "tdl-e2e-saved");
    await loadProjectDropdown(page);
    if (SANDBOX) await freshNodeRunsOnce(page);
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
