//! Authentication: who is asking. A client certificate signed by the client CA is the
//! user of its subject (common name, organizations as groups), as kube-apiserver's
//! `--client-ca-file` does; bearer tokens map to users as its `--token-auth-file` and
//! ServiceAccount tokens do; a request without credentials is the anonymous user when
//! anonymous requests are enabled, and 401 otherwise.
//!
//! ```text
//!  client certificate CN=U, O=G ──▶ UserInfo { U, groups: [G...] }   (checked first)
//!  Authorization: Bearer T      ──▶ tokens[T] ──▶ UserInfo { username, uid, groups }
//!  (none)                       ──▶ system:anonymous (if enabled) │ 401 Unauthorized
//! ```
//!
//! Every authenticated user also gets the group `system:authenticated`, as the real
//! server adds it.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The token of the administrator's kubeconfig ([`super::ApiServer::kubeconfig`]).
pub const ADMIN_TOKEN: &str = "fife-testkit";
/// The administrator's name; its group `system:masters` bypasses authorization.
pub const ADMIN_USER: &str = "kubernetes-admin";
pub const MASTERS: &str = "system:masters";
pub const AUTHENTICATED: &str = "system:authenticated";
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
pub const ANONYMOUS: &str = "system:anonymous";

/// The user a request is made by, in the shape `authentication.k8s.io/v1` `UserInfo`
/// has on the wire (what `SelfSubjectReview` returns and admission's
/// `request.userInfo` carries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user with `groups` and `system:authenticated`.
    pub fn authenticated(username: &str, uid: &str, groups: &[&str]) -> Self {
        let mut all: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        if !all.iter().any(|g| g == AUTHENTICATED) {
            all.push(AUTHENTICATED.to_owned());
        }
        Self {
            username: username.to_owned(),
            uid: uid.to_owned(),
            groups: all,
            extra: BTreeMap::new(),
        }
    }

    pub fn anonymous() -> Self {
        Self {
            username: ANONYMOUS.to_owned(),
            groups: vec![UNAUTHENTICATED.to_owned()],
            ..Self::default()
        }
    }

    /// The administrator of the kubeconfig the server writes.
    pub fn admin() -> Self {
        Self::authenticated(ADMIN_USER, "", &[MASTERS])
    }

    /// A ServiceAccount's user, `system:serviceaccount:NS:NAME`, with the groups the
    /// real token authenticator gives it.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> Self {
        Self::authenticated(
            &service_account_username(namespace, name),
            uid,
            &[
                "system:serviceaccounts",
                &format!("system:serviceaccounts:{namespace}"),
            ],
        )
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Why a token file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read the token file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "token file line {line}: expected token,user,uid[,\"group1,group2\"] (at least 3 columns), found {columns}"
    )]
    Columns { line: usize, columns: usize },
    #[error("token file line {line}: an unterminated quote; quote the groups column as \"g1,g2\"")]
    Quote { line: usize },
}

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub struct Authentication {
    /// Token → user, from a `--token-auth-file`.
    pub static_tokens: Vec<(String, UserInfo)>,
    /// Requests without credentials are `system:anonymous` instead of 401. On by
    /// default, as kube-apiserver's `--anonymous-auth`: over plain HTTP `kubectl` sends
    /// no credentials at all, so tests that do not care about identity keep working;
    /// under RBAC the anonymous user may only read `/version` and health.
    pub anonymous: bool,
}

impl Default for Authentication {
    fn default() -> Self {
        Self {
            static_tokens: Vec::new(),
            anonymous: true,
        }
    }
}

impl Authentication {
    /// Reads a file in kube-apiserver's `--token-auth-file` format: one CSV line per
    /// token, `token,user,uid,"group1,group2"` (the groups column is optional).
    pub fn read_token_file(path: &Path) -> Result<Vec<(String, UserInfo)>, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        parse_token_file(&text)
    }
}

/// Parses token file text; see [`Authentication::read_token_file`].
pub fn parse_token_file(text: &str) -> Result<Vec<(String, UserInfo)>, TokenFileError> {
    let mut users = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let columns = csv_columns(raw).ok_or(TokenFileError::Quote { line })?;
        if columns.len() < 3 {
            return Err(TokenFileError::Columns {
                line,
                columns: columns.len(),
            });
        }
        let groups: Vec<&str> = columns
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        users.push((
            columns[0].trim().to_owned(),
            UserInfo::authenticated(columns[1].trim(), columns[2].trim(), &groups),
        ));
    }
    Ok(users)
}

/// One CSV record: commas separate, double quotes group (`""` is a quote).
fn csv_columns(line: &str) -> Option<Vec<String>> {
    let mut columns = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                columns.last_mut()?.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => columns.push(String::new()),
            (c, _) => columns.last_mut()?.push(c),
        }
    }
    (!quoted).then_some(columns)
}

/// The server's tokens: the administrator's, the token file's and the ServiceAccount
/// tokens it minted.
#[derive(Debug, Default)]
pub struct Tokens {
    users: HashMap<String, UserInfo>,
    anonymous: bool,
}

/// Why a request is refused before authorization: the real server answers 401 with
/// the message `Unauthorized` whatever the cause, so clients learn nothing about tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unauthorized;

impl Tokens {
    pub fn new(config: &Authentication) -> Self {
        let mut users: HashMap<String, UserInfo> = config.static_tokens.iter().cloned().collect();
        users.insert(ADMIN_TOKEN.to_owned(), UserInfo::admin());
        Self {
            users,
            anonymous: config.anonymous,
        }
    }

    pub fn insert(&mut self, token: String, user: UserInfo) {
        self.users.insert(token, user);
    }

    /// The user behind an `Authorization` header value (or its absence). A token that
    /// is present but unknown is refused even when anonymous requests are enabled, as
    /// the real server does.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<UserInfo, Unauthorized> {
        let Some(header) = authorization else {
            return if self.anonymous {
                Ok(UserInfo::anonymous())
            } else {
                Err(Unauthorized)
            };
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or(Unauthorized)?;
        self.users.get(token).cloned().ok_or(Unauthorized)
    }
}

/// The user a verified client certificate names: its subject's common name, with its
/// organizations as groups; `None` when the certificate has no common name.
pub fn user_from_certificate(der: &[u8]) -> Option<UserInfo> {
    let subject = certificate_subject(der)?;
    let mut common_name = None;
    let mut organizations = Vec::new();
    // Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value string }
    let mut names = Der(subject);
    while let Some((0x31, set)) = names.next() {
        let mut set = Der(set);
        while let Some((0x30, pair)) = set.next() {
            let mut pair = Der(pair);
            let (Some((0x06, oid)), Some((_, value))) = (pair.next(), pair.next()) else {
                continue;
            };
            let value = String::from_utf8_lossy(value).into_owned();
            match oid {
                [0x55, 0x04, 0x03] => common_name = Some(value),
                [0x55, 0x04, 0x0a] => organizations.push(value),
                _ => {}
            }
        }
    }
    let groups: Vec<&str> = organizations.iter().map(String::as_str).collect();
    Some(UserInfo::authenticated(&common_name?, "", &groups))
}

/// The subject `Name` of a DER certificate: the sixth field of `tbsCertificate` (the
/// fifth without the optional `[0]` version).
fn certificate_subject(der: &[u8]) -> Option<&[u8]> {
    let (0x30, certificate) = Der(der).next()? else {
        return None;
    };
    let (0x30, tbs) = Der(certificate).next()? else {
        return None;
    };
    let mut fields = Der(tbs);
    let mut first = fields.next()?;
    if first.0 == 0xa0 {
        first = fields.next()?;
    }
    let _serial = first;
    let _signature = fields.next()?;
    let _issuer = fields.next()?;
    let _validity = fields.next()?;
    match fields.next()? {
        (0x30, subject) => Some(subject),
        _ => None,
    }
}

/// A reader of consecutive DER elements: (tag, contents).
struct Der<'a>(&'a [u8]);

impl<'a> Iterator for Der<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (length, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let length = rest[..count]
                .iter()
                .fold(0usize, |n, b| (n << 8) | usize::from(*b));
            (length, &rest[count..])
        };
        if rest.len() < length {
            return None;
        }
        let (contents, rest) = rest.split_at(length);
        self.0 = rest;
        Some((tag, contents))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_certificate_names_its_common_name_and_organizations() {
        use tokio_rustls::rustls::pki_types::CertificateDer;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        let der = CertificateDer::from_pem_slice(super::super::tls::CLIENT_CERTIFICATE.as_bytes())
            .unwrap();
        assert_eq!(
            user_from_certificate(&der),
            Some(UserInfo::authenticated("jane", "", &["approvers", "dev"]))
        );
        assert_eq!(user_from_certificate(&der[..40]), None);
        assert_eq!(user_from_certificate(b""), None);
    }

    #[test]
    fn token_file_lines_map_tokens_to_users_and_groups() {
        let users =
            parse_token_file("t1,alice,1001,\"dev,ops\"\n\nt2,bob,1002\nt3,carol,1003,admins\n")
                .unwrap();
        assert_eq!(users.len(), 3);
        assert_eq!(users[0].0, "t1");
        assert_eq!(users[0].1.username, "alice");
        assert_eq!(users[0].1.uid, "1001");
        assert_eq!(users[0].1.groups, ["dev", "ops", AUTHENTICATED]);
        assert_eq!(users[1].1.groups, [AUTHENTICATED]);
        assert_eq!(users[2].1.groups, ["admins", AUTHENTICATED]);
        assert!(matches!(
            parse_token_file("t1,alice"),
            Err(TokenFileError::Columns {
                line: 1,
                columns: 2
            })
        ));
        assert!(matches!(
            parse_token_file("ok,a,1\nt1,alice,1,\"dev"),
            Err(TokenFileError::Quote { line: 2 })
        ));
    }

    #[test]
    fn anonymous_requests_are_refused_unless_enabled_and_bad_tokens_always() {
        let mut config = Authentication {
            static_tokens: parse_token_file("t1,alice,1001").unwrap(),
            anonymous: false,
        };
        let tokens = Tokens::new(&config);
        assert_eq!(tokens.authenticate(None), Err(Unauthorized));
        assert_eq!(
            tokens.authenticate(Some("Bearer t1")).unwrap().username,
            "alice"
        );
        assert!(
            tokens
                .authenticate(Some(&format!("Bearer {ADMIN_TOKEN}")))
                .unwrap()
                .in_group(MASTERS)
        );
        assert_eq!(tokens.authenticate(Some("Bearer nope")), Err(Unauthorized));
        assert_eq!(tokens.authenticate(Some("Basic YTpi")), Err(Unauthorized));
        config.anonymous = true;
        let tokens = Tokens::new(&config);
        assert_eq!(tokens.authenticate(None).unwrap().username, ANONYMOUS);
        assert_eq!(tokens.authenticate(Some("Bearer nope")), Err(Unauthorized));
    }

    #[test]
    fn service_accounts_carry_their_namespace_groups() {
        let sa = UserInfo::service_account("fife-system", "fife-controller", "u1");
        assert_eq!(
            sa.username,
            "system:serviceaccount:fife-system:fife-controller"
        );
        assert_eq!(
            sa.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:fife-system",
                AUTHENTICATED
            ]
        );
    }
}
