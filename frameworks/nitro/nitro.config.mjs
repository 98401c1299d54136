// Nitro (behind Nuxt, SolidStart, TanStack Start) with its node-server preset: the build's
// .output/ holds the server and the node_modules files @vercel/nft traced.
import { defineNitroConfig } from "nitropack/config";

export default defineNitroConfig({ preset: "node-server", srcDir: ".", compatibilityDate: "2025-01-01" });
