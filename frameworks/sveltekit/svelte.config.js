import adapterNode from "@sveltejs/adapter-node";
import adapterVercel from "@sveltejs/adapter-vercel";

// adapter-node (`node build`, the Docker recipe) unless ADAPTER=vercel: then a Vercel
// Build Output (.vercel/output), whose function folder holds what @vercel/nft traced.
const adapter = process.env.ADAPTER === "vercel" ? adapterVercel({ runtime: "nodejs20.x" }) : adapterNode();

/** @type {import('@sveltejs/kit').Config} */
export default { kit: { adapter } };
