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
