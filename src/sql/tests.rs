use super::*;

#[test]
fn accepts_plain_and_schema_qualified_names() {
    for ok in [
        "aibind_stream_chunks",
        "_t",
        "app.chunks",
        "S1.t$2",
        "Mixed_Case",
    ] {
        assert_eq!(table_name("table", ok).unwrap(), ok);
    }
}

#[test]
fn refuses_anything_else() {
    let long = "a".repeat(64);
    for bad in [
        "",
        "1abc",
        "a.b.c",
        "a.",
        ".a",
        "t; DROP TABLE x",
        "t--",
        "\"quoted\"",
        "sp ace",
        "tä",
        long.as_str(),
    ] {
        let err = table_name("chunksTable", bad).unwrap_err();
        assert_eq!(err.code(), "INVALID_OPTION", "{bad:?}");
        assert!(err.to_string().contains("chunksTable"));
    }
}

#[test]
fn schema_is_idempotent_and_names_indexes_in_the_tables_schema() {
    let ddl = schema("app.chunks", "app.status", "convs");
    assert_eq!(ddl.len(), 6);
    assert_eq!(ddl[0], "CREATE SCHEMA IF NOT EXISTS app");
    assert!(ddl.iter().all(|s| s.contains("IF NOT EXISTS")));
    assert!(ddl[3].starts_with("CREATE INDEX IF NOT EXISTS status_expires_at_idx ON app.status"));
    assert_eq!(schema("c", "s", "v").len(), 5);
    let long = "t".repeat(63);
    assert_eq!(schema("c", "s", "v").len(), 5);
    assert!(schema("c", &long, "v")[2].contains(&format!("{}_expires_at_idx ", "t".repeat(47))));
}

#[test]
fn statements_use_the_given_tables() {
    let s = StreamSql::new("c.chunks", "c.status", false, "o");
    assert!(s.append.text.contains("UPDATE c.status"));
    assert!(!s.append.text.contains("synchronous_commit"));
    assert!(s.append.text.contains("INSERT INTO c.chunks"));
    assert!(!s.create.text.contains("aibind_"));
    // Relaxed: every form of the append, and nothing else, commits without the flush.
    let relaxed = StreamSql::new("c.chunks", "c.status", true, "o");
    let combined = relaxed.append.combined.as_ref().expect("a combined form");
    for text in [&relaxed.append.text, &relaxed.append_alone.text]
        .into_iter()
        .chain([&combined.statement.text])
        .chain(
            combined
                .skipping
                .iter()
                .flat_map(|(one, side)| [&one.text, &side.text]),
        )
    {
        assert!(
            text.contains("set_config('synchronous_commit', 'off', true)"),
            "{text}"
        );
    }
    assert!(!relaxed.finish.text.contains("synchronous_commit"));
    assert!(!relaxed.create.text.contains("synchronous_commit"));
    let c = ConversationSql::new("convs");
    assert!(c.save.text.contains("INSERT INTO convs"));
}

#[test]
fn on_citus_create_append_and_finish_have_forms_of_their_own_never_combined() {
    let sql = StreamSql::new("app.chunks", "app.status", false, "o");
    assert!(sql.append.combined.is_some());
    let citus = sql.append.citus.clone().unwrap();
    assert!(citus.text.contains("FROM app.status_append($1::text"));
    assert!(citus.combined.is_none());
    let forced = StreamSql::new("app.chunks", "app.status", true, "o").forced(Some(true));
    assert!(forced.append.combined.is_none());
    assert!(forced
        .append
        .text
        .contains("status_append($1::text, $2::text, $3::bigint, $4::int, true)"));
    assert!(forced.create.text.contains("app.status_create("));
    assert!(!forced.finish.text.contains("pg_notify"));
    assert!(!forced.read_page.text.is_empty());
    let plain = StreamSql::new("c", "s", false, "o").forced(Some(false));
    assert!(plain.append.citus.is_none() && plain.append.combined.is_some());
    let load = ConversationSql::new("convs").forced(Some(true)).load;
    assert!(load.combined.is_none());
}

#[test]
fn citus_function_names_fit_63_bytes_in_the_tables_schema() {
    let long = "t".repeat(63);
    let name = citus::append_function(&format!("app.{long}"));
    let (schema, bare) = name.split_once('.').unwrap();
    assert_eq!(schema, "app");
    assert_eq!(bare.len(), 63);
    assert!(bare.ends_with("_append"));
    assert_eq!(
        citus::create_function("aibind_stream_status"),
        "aibind_stream_status_create"
    );
    let ddl = citus::schema("c", "s", "v").join(";\n");
    assert!(ddl.contains("create_distributed_table('c', 'id', colocate_with => 's')"));
    assert!(ddl.contains("create_distributed_table('v', 'session_id')"));
    assert!(ddl.contains("IF NOT EXISTS (SELECT 1 FROM pg_dist_partition"));
}
