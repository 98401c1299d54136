export default function Home() {
  return <p>POST /api/stream, then read GET /api/stream/[id] as server-sent events.</p>;
}
