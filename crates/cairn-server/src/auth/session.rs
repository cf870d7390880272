//! Dashboard sessions: a random id in a `cairn_session` cookie (HttpOnly,
//! SameSite=Lax, Secure behind HTTPS), held in memory with the caller it
//! speaks for and a CSRF token that every state-changing request made with
//! the cookie must repeat in an `X-CSRF-Token` header (or a `csrf` form
//! field). A session opened with a token ends when the token is revoked;
//! every session ends after [`SESSION_TTL`] or at sign-out.

use super::Principal;
use axum::http::{HeaderMap, header};
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "cairn_session";

/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// One signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    /// Whom it speaks for.
    pub principal: Principal,
    /// The token it was opened with, re-checked on every request.
    pub token: Option<String>,
    /// What state-changing requests must repeat.
    pub csrf: String,
    /// When it ends.
    pub expires: Instant,
}

/// Every live session, by id.
#[derive(Debug, Default)]
pub struct Sessions {
    map: RwLock<HashMap<String, Session>>,
}

impl Sessions {
    /// Opens a session for `principal`; returns its id and CSRF token.
    pub fn open(
        &self,
        principal: Principal,
        token: Option<String>,
    ) -> Result<(String, String), cairn_store::StoreError> {
        let id = cairn_store::random_hex(32)?;
        let csrf = cairn_store::random_hex(32)?;
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        map.insert(
            id.clone(),
            Session {
                principal,
                token,
                csrf: csrf.clone(),
                expires: now + SESSION_TTL,
            },
        );
        Ok((id, csrf))
    }

    /// The live session `id`.
    pub fn get(&self, id: &str) -> Option<Session> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    /// Ends the session `id`.
    pub fn close(&self, id: &str) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// The value of the cookie `name` in a request's headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse_encoded)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// The `Set-Cookie` value of session `id` (an empty id clears it).
pub fn set_cookie(id: &str, secure: bool) -> String {
    let mut c = cookie::Cookie::build((COOKIE, id.to_string()))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(secure);
    c = if id.is_empty() {
        c.max_age(cookie::time::Duration::ZERO)
    } else {
        c.max_age(cookie::time::Duration::seconds(SESSION_TTL.as_secs() as i64))
    };
    c.build().encoded().to_string()
}

/// Whether `presented` is the session's CSRF token (constant time).
pub fn csrf_matches(session: &Session, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(session.csrf.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_read_and_close() {
        let sessions = Sessions::default();
        let (id, csrf) = sessions.open(Principal::Anonymous, None).unwrap();
        assert_eq!(id.len(), 64);
        let s = sessions.get(&id).unwrap();
        assert!(csrf_matches(&s, Some(&csrf)));
        assert!(!csrf_matches(&s, Some("x")));
        assert!(!csrf_matches(&s, None));
        sessions.close(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn the_cookie_is_http_only_and_same_site() {
        let c = set_cookie("abc", true);
        for part in [
            "cairn_session=abc",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
        ] {
            assert!(c.contains(part), "{c}");
        }
        assert!(!set_cookie("abc", false).contains("Secure"));
        assert!(set_cookie("", false).contains("Max-Age=0"));
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; cairn_session=xyz".parse().unwrap());
        assert_eq!(cookie(&headers, COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, "b"), None);
    }
}
