//! What differs on Citus (tables distributed across worker nodes): how the store finds
//! out, the statements that differ there, and the DDL that distributes the tables.
//!
//! On Citus a statement that filters on one distribution value goes to one shard as a
//! whole (a "router" query, one round trip from the coordinator to a worker). A
//! data-modifying CTE that feeds an `INSERT ... SELECT` is not routed: Citus runs its
//! parts one by one through the coordinator (about 5 ms instead of 0.5), and a combined
//! append over several streams, a row-locking statement over several shards, is refused
//! outright. So on Citus `create` and `append` call functions that `migrate --citus`
//! creates and distributes with the status table: the coordinator sends the whole call to
//! the worker that holds the stream's shards, where it runs as plain statements.

use super::statement::{Column, Kind, Statement};

/// Whether the database has Citus: one row, 1 or 0.
pub fn detect() -> Statement {
    Statement::new(
        "SELECT count(*)::int AS citus FROM pg_catalog.pg_extension WHERE extname = 'citus'".into(),
        &[Column {
            name: "citus",
            kind: Kind::Int,
        }],
    )
}

/// The name of a function that belongs to `status`: the table's name and `suffix`, cut
/// to fit 63 bytes, in the table's schema.
fn function(status: &str, suffix: &str) -> String {
    let (schema, bare) = match status.rsplit_once('.') {
        Some((schema, bare)) => (format!("{schema}."), bare),
        None => (String::new(), status),
    };
    format!(
        "{schema}{}_{suffix}",
        &bare[..bare.len().min(62 - suffix.len())]
    )
}

pub fn append_function(status: &str) -> String {
    function(status, "append")
}

pub fn create_function(status: &str) -> String {
    function(status, "create")
}

/// `append` on Citus: the same arguments, a row (seq, NULL) when stored, none when not
/// (the stream is missing, finished or not at `$4 - 1`). `relaxed`: the commit does not
/// wait for the WAL flush. The chunk is announced afterwards from the coordinator, which
/// is where readers LISTEN (a NOTIFY inside would be sent on the worker).
pub fn append(status: &str, relaxed: bool, columns: &'static [Column]) -> Statement {
    Statement::new(
        format!(
            "SELECT seq, NULL::int AS notified FROM {}($1::text, $2::text, $3::bigint, $4::int, \
             {relaxed}) AS seq",
            append_function(status)
        ),
        columns,
    )
}

/// `create` on Citus: a row (the id) when the stream was created.
pub fn create(status: &str) -> Statement {
    Statement::new(
        format!(
            "SELECT id FROM {}($1::text, $2::bigint) AS id",
            create_function(status)
        ),
        &[Column {
            name: "id",
            kind: Kind::Text,
        }],
    )
}

/// Runs `sql` only while `table` is not yet distributed (so running the schema again
/// changes nothing).
fn distribute(table: &str, column: &str, colocate: Option<&str>) -> String {
    let with = colocate
        .map(|t| format!(", colocate_with => '{t}'"))
        .unwrap_or_default();
    format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = \
         '{table}'::regclass) THEN PERFORM create_distributed_table('{table}', '{column}'{with}); \
         END IF; END $$"
    )
}

/// The statements that distribute the tables (after `tables::schema`): the stream tables
/// by `id`, colocated, the conversations by `session_id`, and the functions `create` and
/// `append` call there, each sent to the worker of its stream. Idempotent.
pub fn schema(chunks: &str, status: &str, conversations: &str) -> Vec<String> {
    let append = append_function(status);
    let create = create_function(status);
    vec![
        "CREATE EXTENSION IF NOT EXISTS citus".into(),
        distribute(status, "id", None),
        distribute(chunks, "id", Some(status)),
        distribute(conversations, "session_id", None),
        format!(
            "CREATE OR REPLACE FUNCTION {append}(p_id text, p_data text, p_expires bigint, \
             p_at int, p_relaxed boolean) RETURNS SETOF int LANGUAGE plpgsql AS $$\n\
             DECLARE n int;\nBEGIN\n  \
             IF p_relaxed THEN PERFORM set_config('synchronous_commit', 'off', true); END IF;\n  \
             UPDATE {status} SET total_chunks = total_chunks + 1, expires_at = p_expires \
             WHERE id = p_id AND state = 'active' AND (p_at IS NULL OR total_chunks = p_at - 1) \
             RETURNING total_chunks INTO n;\n  \
             IF n IS NOT NULL THEN\n    \
             INSERT INTO {chunks} (id, seq, data) VALUES (p_id, n, p_data);\n    \
             RETURN NEXT n;\n  END IF;\nEND $$"
        ),
        format!(
            "CREATE OR REPLACE FUNCTION {create}(p_id text, p_expires bigint) RETURNS SETOF text \
             LANGUAGE plpgsql AS $$\nBEGIN\n  \
             INSERT INTO {status} (id, state, total_chunks, expires_at) \
             VALUES (p_id, 'active', 0, p_expires) ON CONFLICT (id) DO NOTHING;\n  \
             IF FOUND THEN\n    DELETE FROM {chunks} WHERE id = p_id;\n    RETURN NEXT p_id;\n  \
             END IF;\nEND $$"
        ),
        format!(
            "SELECT create_distributed_function('{append}(text,text,bigint,int,boolean)', \
             'p_id', colocate_with => '{status}')"
        ),
        format!(
            "SELECT create_distributed_function('{create}(text,bigint)', 'p_id', \
             colocate_with => '{status}')"
        ),
    ]
}

/// stop / complete / fail on Citus: the same change, without the NOTIFY, which would be
/// sent on the worker where no reader listens; `announce` 1 asks the store to announce
/// it from the coordinator.
pub fn finish(status: &str) -> Statement {
    Statement::new(
        format!(
            "UPDATE {status} SET state = $2::text, error = $3::text, expires_at = $4::bigint \
             WHERE id = $1::text AND state = 'active' AND $5::text IS NOT NULL \
             RETURNING total_chunks, 1 AS announce"
        ),
        &[
            Column {
                name: "total_chunks",
                kind: Kind::Int,
            },
            Column {
                name: "announce",
                kind: Kind::Int,
            },
        ],
    )
}
