use super::crossing::MARK;
use super::*;

fn crossed(err: Error) -> serde_json::Value {
    let err: napi::Error = err.into();
    let json = err.reason.strip_prefix(MARK).expect("marked");
    serde_json::from_str(json).expect("JSON")
}

#[test]
fn original_messages_are_word_for_word() {
    assert_eq!(
        Error::StreamExists("a b".into()).to_string(),
        "Stream \"a b\" already exists"
    );
    assert_eq!(
        Error::StreamNotActive("x".into()).to_string(),
        "Stream \"x\" not found or not active"
    );
}

#[test]
fn errors_cross_as_json() {
    let err = crossed(Error::from_server(
        "42P01",
        "relation \"nope\" does not exist".into(),
        false,
    ));
    assert_eq!(err["code"], "DATABASE_ERROR");
    assert_eq!(err["sqlState"], "42P01");
    assert_eq!(err["retryable"], false);
    assert_eq!(err["message"], "relation \"nope\" does not exist");
    let err = crossed(Error::StreamExists("s".into()));
    assert_eq!(err["code"], "STREAM_EXISTS");
    assert!(err.get("sqlState").is_none());
}

/// The table of SQLSTATE -> code that both backends share.
#[test]
fn sql_states_are_classified_once() {
    let cases = [
        ("57014", "QUERY_TIMEOUT", true),
        ("08006", "CONNECTION_ERROR", true),
        ("08P01", "CONNECTION_ERROR", true),
        ("57P01", "CONNECTION_ERROR", true),
        ("57P03", "CONNECTION_ERROR", true),
        ("28P01", "CONNECTION_ERROR", false),
        ("28000", "CONNECTION_ERROR", false),
        ("3D000", "CONNECTION_ERROR", false),
        ("53300", "CONNECTION_ERROR", true),
        ("40001", "DATABASE_ERROR", true),
        ("40P01", "DATABASE_ERROR", true),
        ("25006", "DATABASE_ERROR", true),
        ("55P03", "QUERY_TIMEOUT", true),
        ("23505", "DATABASE_ERROR", false),
        ("42P01", "DATABASE_ERROR", false),
    ];
    for (state, code, retryable) in cases {
        for at_connect in [false, true] {
            let err = Error::from_server(state, "m".into(), at_connect);
            assert_eq!(err.code(), code, "{state}");
            assert_eq!(err.retryable(), retryable, "{state}");
            assert_eq!(err.sql_state(), Some(state));
        }
    }
}

#[test]
fn a_refused_startup_parameter_is_not_retryable_and_names_the_fix() {
    let err = Error::from_server(
        "08P01",
        "unsupported startup parameter: options".into(),
        true,
    );
    assert_eq!(err.code(), "CONNECTION_ERROR");
    assert!(!err.retryable());
    assert!(err.to_string().contains("ignore_startup_parameters"));
    let broke = Error::from_server("08P01", "server closed the connection".into(), true);
    assert!(broke.retryable());
}

#[test]
fn lost_and_not_connected_say_so() {
    let lost = Error::from_server("57P01", "terminating".into(), false);
    assert!(lost.to_string().starts_with("lost the connection"));
    assert!(lost.to_string().contains("unknown"));
    let refused = Error::from_server("57P03", "starting up".into(), true);
    assert!(refused.to_string().starts_with("could not connect"));
    assert!(Error::timed_out(5).to_string().contains("5 ms"));
    assert!(Error::timed_out(5).spoils_connection());
    assert!(Error::timed_out(5).outcome_unknown());
    assert!(!Error::timed_out_unsent(5).outcome_unknown());
    assert!(!Error::from_server("57014", "m".into(), false).outcome_unknown());
    assert!(lost.outcome_unknown());
    assert!(crossed(lost)["unknown"] == true);
    assert!(!Error::StreamNotActive("x".into()).spoils_connection());
}

#[test]
fn a_read_only_node_spoils_the_connection_and_is_worth_retrying() {
    let err = Error::from_server(
        "25006",
        "cannot execute UPDATE in a read-only transaction".into(),
        false,
    );
    assert!(err.read_only() && err.spoils_connection() && err.retryable());
    assert!(!err.outcome_unknown());
    assert!(err.to_string().contains("read-only node"));
    assert!(!Error::from_server("23505", "m".into(), false).spoils_connection());
}

#[test]
fn the_servers_own_time_limits_are_told_from_the_stores_cancel() {
    for state in ["57014", "55P03"] {
        let err = Error::from_server(state, "canceling statement".into(), false);
        assert_eq!(
            (err.code(), err.retryable(), err.own_limit()),
            ("QUERY_TIMEOUT", true, true)
        );
        assert!(!err.spoils_connection() && !err.outcome_unknown());
        assert!(crossed(err.clone())["ownLimit"] == true);
        let ours = err.cancelled_by_store();
        assert!(!ours.own_limit());
        assert!(crossed(ours).get("ownLimit").is_none());
    }
    assert!(!Error::timed_out(5).own_limit());
}
