// The original @aibind/postgres algorithm, written here from CONTRACT.md so every ratio in
// the benchmark comes from one run: a StreamStore over a pg client that checks-then-
// inserts on create, appends in one CTE, and polls with two queries per tick.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class BaselineStreamStore {
  /** @param {import("pg").Pool} client */
  constructor(
    client,
    {
      chunksTable = "aibind_stream_chunks",
      statusTable = "aibind_stream_status",
      pollIntervalMs = 100,
      ttlMs = 300_000,
    } = {},
  ) {
    this.client = client;
    this.chunksTable = chunksTable;
    this.statusTable = statusTable;
    this.pollIntervalMs = pollIntervalMs;
    this.ttlMs = ttlMs;
  }

  async create(id) {
    const existing = await this.client.query(`SELECT 1 FROM ${this.statusTable} WHERE id = $1`, [id]);
    if (existing.rows.length > 0) throw new Error(`Stream "${id}" already exists`);
    await this.client.query(
      `INSERT INTO ${this.statusTable} (id, state, total_chunks, expires_at) VALUES ($1, 'active', 0, $2)`,
      [id, Date.now() + this.ttlMs],
    );
  }

  async append(id, chunk) {
    const result = await this.client.query(
      `WITH updated AS (UPDATE ${this.statusTable} SET total_chunks = total_chunks + 1 WHERE id = $1 AND state = 'active' RETURNING total_chunks)
       INSERT INTO ${this.chunksTable} (id, seq, data) SELECT $1, total_chunks, $2 FROM updated RETURNING seq`,
      [id, chunk],
    );
    if (result.rows.length === 0) throw new Error(`Stream "${id}" not found or not active`);
    return result.rows[0].seq;
  }

  async *readFrom(id, afterSeq) {
    let cursor = afterSeq;
    for (;;) {
      const chunks = await this.client.query(
        `SELECT seq, data FROM ${this.chunksTable} WHERE id = $1 AND seq > $2 ORDER BY seq`,
        [id, cursor],
      );
      for (const row of chunks.rows) {
        cursor = row.seq;
        yield { seq: row.seq, data: row.data };
      }
      const status = await this.client.query(`SELECT state FROM ${this.statusTable} WHERE id = $1`, [id]);
      if (status.rows.length === 0) return;
      if (status.rows[0].state !== "active") {
        const rest = await this.client.query(
          `SELECT seq, data FROM ${this.chunksTable} WHERE id = $1 AND seq > $2 ORDER BY seq`,
          [id, cursor],
        );
        for (const row of rest.rows) yield { seq: row.seq, data: row.data };
        return;
      }
      await sleep(this.pollIntervalMs);
    }
  }

  async complete(id) {
    await this.client.query(`UPDATE ${this.statusTable} SET state = 'done' WHERE id = $1 AND state = 'active'`, [id]);
  }

  async cleanup() {
    const gone = await this.client.query(
      `DELETE FROM ${this.statusTable} WHERE expires_at < $1 AND state != 'active' RETURNING id`,
      [Date.now()],
    );
    if (gone.rows.length > 0) {
      await this.client.query(`DELETE FROM ${this.chunksTable} WHERE id = ANY($1::text[])`, [
        gone.rows.map((r) => r.id),
      ]);
    }
  }
}

export class BaselineConversationStore {
  /** @param {import("pg").Pool} client */
  constructor(client, { table = "aibind_conversations", ttlMs = 1_800_000 } = {}) {
    this.client = client;
    this.table = table;
    this.ttlMs = ttlMs;
  }

  async loadJSON(sessionId) {
    const result = await this.client.query(`SELECT data FROM ${this.table} WHERE session_id = $1 AND expires_at > $2`, [
      sessionId,
      Date.now(),
    ]);
    return result.rows[0]?.data ?? null;
  }

  async saveJSON(sessionId, json) {
    await this.client.query(
      `INSERT INTO ${this.table} (session_id, data, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (session_id) DO UPDATE SET data = EXCLUDED.data, expires_at = EXCLUDED.expires_at`,
      [sessionId, json, Date.now() + this.ttlMs],
    );
  }
}
