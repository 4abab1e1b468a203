// The 3DLabs pack's browser extension: the "3DLabs" settings section and what its nodes show.
//
// Owns: registering the extension with ComfyUI. The work lives in ./lib (side-effect-free
// modules): settings.js (settings rows; the token goes only to the pack's server route),
// nodes.js (output display, Load Project's project dropdown), client.js (the /3dlabs routes),
// templates.js (the descriptions on the pack's template cards).

import { api, app } from "./lib/client.js";
import { decorateNodeType, watchRuns } from "./lib/nodes.js";
import { settingDefinitions, syncMirrors } from "./lib/settings.js";
import { describeTemplateCards } from "./lib/templates.js";

app.registerExtension({
  name: "3DLabs.Nodes",
  settings: settingDefinitions(),

  async beforeRegisterNodeDef(nodeType, nodeData) {
    decorateNodeType(nodeType, nodeData);
  },

  async setup() {
    watchRuns(api);
    describeTemplateCards();
    try {
      // The pack's config file is the source of truth; ComfyUI's copies follow it.
      await syncMirrors();
    } catch (err) {
      console.warn("3DLabs: could not read the pack's status:", err?.message ?? err);
    }
  },
});
