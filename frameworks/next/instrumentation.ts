// OpenTelemetry for the whole app (docs/observability.md): Next's spans for each request,
// and the store's under the route's.
import { registerOTel } from "@vercel/otel";

export function register() {
  registerOTel({ serviceName: "aibind-next" });
}
