// The package loads a native addon: Next must leave it to Node instead of bundling it.
// `output: "standalone"` (Next's Docker recipe; Vercel traces files the same way): the
// build's .next/standalone holds the server and the node_modules files it traced.
/** @type {import('next').NextConfig} */
const nextConfig = { output: "standalone", serverExternalPackages: ["@aibind-rs/postgres"] };
export default nextConfig;
