//! A ready-made [`UserResolver`] for `Authorization: Bearer <JWT>` headers, through the
//! `jsonwebtoken` crate: HS256 (a shared secret) or RS256 (the issuer's public key). `sub` is
//! the user id; every other claim is handed to the callbacks. A token that is missing, badly
//! signed, signed with another algorithm, expired or not yet valid resolves no user (401).

use super::user::{User, UserResolver};
use async_trait::async_trait;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Resolves the user from a bearer JWT.
///
/// By default `exp` is required and checked (with 60 s of leeway, `jsonwebtoken`'s default),
/// `nbf` is checked when present, and only the one algorithm the resolver was made for is
/// accepted. [`JwtResolver::with_validation`] takes full control (issuer, audience, leeway).
///
/// ```
/// use jsonwebtoken::{encode, EncodingKey, Header};
/// use rf_broadcast::{JwtResolver, UserResolver};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let resolver = JwtResolver::hs256("example-secret").unwrap();
/// let exp = jsonwebtoken::get_current_timestamp() + 3600;
/// let token = encode(
///     &Header::default(), // HS256
///     &json!({"sub": "42", "name": "Ada", "exp": exp}),
///     &EncodingKey::from_secret(b"example-secret").unwrap(),
/// )
/// .unwrap();
///
/// let request = axum::http::Request::post("/broadcasting/auth")
///     .header("authorization", format!("Bearer {token}"))
///     .body(())
///     .unwrap();
/// let (parts, ()) = request.into_parts();
/// let user = resolver.resolve(&parts).await.unwrap();
/// assert_eq!(user.id, "42");
/// assert_eq!(user.claim_str("name"), Some("Ada"));
///
/// // Signed with another secret: nobody.
/// let forged = encode(
///     &Header::default(),
///     &json!({"sub": "42", "exp": exp}),
///     &EncodingKey::from_secret(b"guess").unwrap(),
/// )
/// .unwrap();
/// let request = axum::http::Request::post("/")
///     .header("authorization", format!("Bearer {forged}"))
///     .body(())
///     .unwrap();
/// assert!(resolver.resolve(&request.into_parts().0).await.is_none());
/// # }
/// ```
#[derive(Clone)]
pub struct JwtResolver {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtResolver")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

/// Why a JWT key could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid JWT key: {0}")]
pub struct JwtKeyError(#[from] jsonwebtoken::errors::Error);

impl JwtResolver {
    /// HS256 tokens signed with this shared secret (an empty secret is an error).
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<JwtResolver, JwtKeyError> {
        let key = DecodingKey::from_secret(secret.as_ref())?;
        Ok(JwtResolver::with_validation(
            key,
            Validation::new(Algorithm::HS256),
        ))
    }

    /// RS256 tokens, verified with the issuer's RSA public key in PEM
    /// (`-----BEGIN PUBLIC KEY-----` or `-----BEGIN RSA PUBLIC KEY-----`).
    pub fn rs256_pem(public_key_pem: impl AsRef<[u8]>) -> Result<JwtResolver, JwtKeyError> {
        let key = DecodingKey::from_rsa_pem(public_key_pem.as_ref())?;
        Ok(JwtResolver::with_validation(
            key,
            Validation::new(Algorithm::RS256),
        ))
    }

    /// Any key and validation rules `jsonwebtoken` supports (issuer, audience, leeway, other
    /// algorithms). `sub` is always required, a non-empty string.
    pub fn with_validation(key: DecodingKey, mut validation: Validation) -> JwtResolver {
        validation.required_spec_claims.insert("sub".to_string());
        JwtResolver { key, validation }
    }

    /// The user a token stands for, or `None` when it does not verify.
    pub fn user_from_token(&self, token: &str) -> Option<User> {
        let data =
            match jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation) {
                Ok(data) => data,
                Err(e) => {
                    tracing::debug!(error = %e, "bearer token refused");
                    return None;
                }
            };
        let mut claims = data.claims;
        let id = match claims.remove("sub")? {
            Value::String(s) if !s.is_empty() => s,
            _ => return None,
        };
        Some(User { id, claims })
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[async_trait]
impl UserResolver for JwtResolver {
    async fn resolve(&self, request: &Parts) -> Option<User> {
        self.user_from_token(bearer(request)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn parts(auth: Option<&str>) -> Parts {
        let mut b = axum::http::Request::post("/broadcasting/auth");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn hs(claims: Value, secret: &[u8]) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret).unwrap(),
        )
        .unwrap()
    }

    fn later() -> u64 {
        jsonwebtoken::get_current_timestamp() + 600
    }

    #[tokio::test]
    async fn hs256_valid_expired_forged_and_missing() {
        let r = JwtResolver::hs256("s").unwrap();
        let good = hs(json!({"sub": "7", "name": "Ada", "exp": later()}), b"s");
        let user = r
            .resolve(&parts(Some(&format!("Bearer {good}"))))
            .await
            .unwrap();
        assert_eq!(user.id, "7");
        assert_eq!(user.claim_str("name"), Some("Ada"));
        assert!(user.claim("sub").is_none(), "sub is the id, not a claim");
        // lower-case scheme
        assert!(r
            .resolve(&parts(Some(&format!("bearer {good}"))))
            .await
            .is_some());

        let expired = hs(json!({"sub": "7", "exp": 1_000_000}), b"s");
        assert!(r
            .resolve(&parts(Some(&format!("Bearer {expired}"))))
            .await
            .is_none());
        let forged = hs(json!({"sub": "7", "exp": later()}), b"other");
        assert!(r
            .resolve(&parts(Some(&format!("Bearer {forged}"))))
            .await
            .is_none());
        let no_exp = hs(json!({"sub": "7"}), b"s");
        assert!(r
            .resolve(&parts(Some(&format!("Bearer {no_exp}"))))
            .await
            .is_none());
        let no_sub = hs(json!({"exp": later()}), b"s");
        assert!(r
            .resolve(&parts(Some(&format!("Bearer {no_sub}"))))
            .await
            .is_none());
        // `sub` is a string (RFC 7519 StringOrURI), never a number or empty.
        for sub in [json!(12), json!("")] {
            let t = hs(json!({"sub": sub, "exp": later()}), b"s");
            assert!(r
                .resolve(&parts(Some(&format!("Bearer {t}"))))
                .await
                .is_none());
        }

        assert!(r.resolve(&parts(None)).await.is_none());
        assert!(r.resolve(&parts(Some("Basic abc"))).await.is_none());
        assert!(r.resolve(&parts(Some("Bearer "))).await.is_none());
        assert!(r.resolve(&parts(Some("Bearer not.a.jwt"))).await.is_none());
    }

    #[tokio::test]
    async fn alg_none_and_other_algorithms_are_refused() {
        let r = JwtResolver::hs256("s").unwrap();
        // {"alg":"none"} header, no signature.
        let b64 = |v: Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(json!({"alg": "none", "typ": "JWT"})),
            b64(json!({"sub": "7", "exp": later()}))
        );
        assert!(r
            .resolve(&parts(Some(&format!("Bearer {none}"))))
            .await
            .is_none());
        let hs384 = encode(
            &Header::new(Algorithm::HS384),
            &json!({"sub": "7", "exp": later()}),
            &EncodingKey::from_secret(b"s").unwrap(),
        )
        .unwrap();
        assert!(r
            .resolve(&parts(Some(&format!("Bearer {hs384}"))))
            .await
            .is_none());
    }

    #[test]
    fn bad_keys_are_errors() {
        assert!(JwtResolver::rs256_pem("not a key").is_err());
        assert!(JwtResolver::hs256("").is_err());
    }

    #[tokio::test]
    async fn rs256_verifies_with_the_public_key_only() {
        let private = include_str!("../../tests/fixtures/jwt-rs256-private.pem");
        let public = include_str!("../../tests/fixtures/jwt-rs256-public.pem");
        let r = JwtResolver::rs256_pem(public).unwrap();
        let token = encode(
            &Header::new(Algorithm::RS256),
            &json!({"sub": "9", "exp": later()}),
            &EncodingKey::from_rsa_pem(private.as_bytes()).unwrap(),
        )
        .unwrap();
        let user = r.resolve(&parts(Some(&format!("Bearer {token}")))).await;
        assert_eq!(user.map(|u| u.id).as_deref(), Some("9"));
        // An HS256 token "signed" with the public key text (the classic confusion) is refused.
        let confused = hs(json!({"sub": "9", "exp": later()}), public.as_bytes());
        assert!(r
            .resolve(&parts(Some(&format!("Bearer {confused}"))))
            .await
            .is_none());
    }
}
