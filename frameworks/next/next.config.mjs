// The package loads a native addon: Next must leave it to Node instead of bundling it.
/** @type {import('next').NextConfig} */
const nextConfig = { serverExternalPackages: ["@aibind-rs/postgres"] };
export default nextConfig;
