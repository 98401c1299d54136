//! Just enough of libpq's connection-string syntax to take out the options tokio-postgres
//! does not know (`sslmode=verify-full`, `sslrootcert`), leaving the rest as it was:
//! `postgres://user:pass@host/db?k=v&...` or `host=h port=5432 k='quoted value'`.

use std::fmt;

use crate::error::{Error, Result};

#[derive(Debug)]
pub enum ConnInfo {
    /// `postgres://...`: the part before `?`, and each `k=v` of the query, kept raw too.
    Url {
        base: String,
        params: Vec<(String, String, String)>,
    },
    /// `key=value` pairs.
    KeyValue(Vec<(String, String)>),
}

impl ConnInfo {
    pub fn parse(text: &str) -> Result<Self> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let (base, query) = text.split_once('?').unwrap_or((text, ""));
            let params = query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|raw| {
                    let (k, v) = raw.split_once('=').unwrap_or((raw, ""));
                    Ok((percent_decode(k)?, percent_decode(v)?, raw.to_string()))
                })
                .collect::<Result<_>>()?;
            Ok(ConnInfo::Url {
                base: base.to_string(),
                params,
            })
        } else {
            key_values(text).map(ConnInfo::KeyValue)
        }
    }

    /// Whether the string sets an option.
    pub fn has(&self, key: &str) -> bool {
        match self {
            ConnInfo::Url { params, .. } => params.iter().any(|(k, _, _)| k == key),
            ConnInfo::KeyValue(params) => params.iter().any(|(k, _)| k == key),
        }
    }

    /// Removes an option and returns its value (the last one, if given twice).
    pub fn take(&mut self, key: &str) -> Option<String> {
        let mut found = None;
        match self {
            ConnInfo::Url { params, .. } => params.retain(|(k, v, _)| {
                let hit = k == key;
                if hit {
                    found = Some(v.clone());
                }
                !hit
            }),
            ConnInfo::KeyValue(params) => params.retain(|(k, v)| {
                let hit = k == key;
                if hit {
                    found = Some(v.clone());
                }
                !hit
            }),
        }
        found
    }
}

impl fmt::Display for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnInfo::Url { base, params } => {
                f.write_str(base)?;
                for (i, (_, _, raw)) in params.iter().enumerate() {
                    f.write_str(if i == 0 { "?" } else { "&" })?;
                    f.write_str(raw)?;
                }
                Ok(())
            }
            ConnInfo::KeyValue(params) => {
                for (i, (k, v)) in params.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    let v = v.replace('\\', "\\\\").replace('\'', "\\'");
                    write!(f, "{k}='{v}'")?;
                }
                Ok(())
            }
        }
    }
}

fn invalid(what: &str) -> Error {
    Error::InvalidArgument(format!(
        "the connection string is not valid ({what}); expected \
         postgres://user:password@host:port/database or key=value pairs"
    ))
}

fn percent_decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| invalid("a bad %-escape"))?;
                out.push(hex);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| invalid("a %-escape that is not UTF-8"))
}

/// `key = value` pairs; a value is bare or single-quoted, with `\` escaping.
fn key_values(text: &str) -> Result<Vec<(String, String)>> {
    let mut chars = text.chars().peekable();
    let mut pairs = Vec::new();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(invalid(&format!("\"{key}\" has no value")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(invalid("an unterminated quoted value")),
                    Some('\'') => break,
                    Some('\\') => value.push(chars.next().ok_or_else(|| invalid("a trailing \\"))?),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.push(chars.next().ok_or_else(|| invalid("a trailing \\"))?);
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_options_out_of_a_url_and_keeps_the_rest_as_it_was() {
        let mut info = ConnInfo::parse(
            "postgresql://u:p%40ss@host:5432/db?sslmode=verify-full&application_name=my%20app&sslrootcert=%2Ftmp%2Fca.pem",
        )
        .unwrap();
        assert_eq!(info.take("sslrootcert").as_deref(), Some("/tmp/ca.pem"));
        assert_eq!(info.take("sslmode").as_deref(), Some("verify-full"));
        assert_eq!(info.take("sslmode"), None);
        assert_eq!(
            info.to_string(),
            "postgresql://u:p%40ss@host:5432/db?application_name=my%20app"
        );
        let mut bare = ConnInfo::parse("postgres://h/db?sslmode=require").unwrap();
        bare.take("sslmode");
        assert_eq!(bare.to_string(), "postgres://h/db");
    }

    #[test]
    fn takes_options_out_of_key_value_pairs() {
        let mut info = ConnInfo::parse(
            "host=h  port = 5432 password='it\\'s a \\\\ x' sslmode=verify-ca dbname=d\\ b",
        )
        .unwrap();
        assert_eq!(info.take("sslmode").as_deref(), Some("verify-ca"));
        assert_eq!(
            info.to_string(),
            "host='h' port='5432' password='it\\'s a \\\\ x' dbname='d b'"
        );
        let config: tokio_postgres::Config = info.to_string().parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"it's a \\ x"[..]));
        assert_eq!(config.get_dbname(), Some("d b"));
    }

    #[test]
    fn refuses_broken_strings() {
        for bad in ["host", "host='open", "postgres://h/db?a=%zz"] {
            let err = ConnInfo::parse(bad).err().unwrap();
            assert_eq!(err.code(), "INVALID_ARGUMENT", "{bad}");
        }
    }
}
