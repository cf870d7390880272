//! The test provider's signing keys and the RS256 tokens it signs.
//!
//! TEST ONLY: the two RSA keys below are committed on purpose, are public,
//! and must never sign anything outside tests. They are fixed because
//! generating RSA keys at test time is slow in debug builds.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The `kid` of the provider's key, in its key set and in every token's
/// header (a token signed with the other key carries it too, so that the
/// signature, not the key lookup, is what fails).
pub const KEY_ID: &str = "cairn-test-key-1";

/// TEST ONLY: the key the provider signs with and publishes.
const SIGNING_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDLVTwAUcai9ehk
8BNdImVOp6TcV6oiynRcm7P6OACfLhLaK+/ZHhBl+7S1FGmWBydgNDvpNiCom1zr
/UCgq0tqI3enHIxuUMFARcrEEr43oqvHOtaM9mEE/3QdZT0GG5TAiEhEgyXeHhOL
qsp5B8e/KIObMt5pRRDDWYypcu8UfjkzPZmhjn0TGQnPEMZg77F6WIyG1L6o2rJ2
gCDU3mtUmTv8C6Dkh/TSIPVY5uWgEw5Spf+sU15q4K0/mYwM3pIFOBYBNST1hbni
MJ5LHKLMK+n+hxIHK6OnJXL8n/pw3aU1y+dZVXxi6xT35biVH4I31eppCL2TDPBW
/3A0tx9rAgMBAAECggEAAbuvLdv6vLHH5hgMitHqitZ5cDCZkFgy993hbhPNDFM4
XZwDMCCVA4Ijbd+0DXbcTMDbYUJHKPxypT06Tcus6GyyMwM4+awNAQZ5upf3iUIs
UeS5ujZ7GdcJHxtUa4WtRxFOntlXU+epG+moTp5A+XU6LaRTW8PjZ05Aj5unV5RI
khd0QUaa7NnnOg1awBIudcFbQdXkmKB3NNqU0kdHaiVX/RRN4Q/VC9cLE7sQZbTd
p+0tjbej6jQEjsCnyYR9Xl6sCvEN62Q1EhNDqhMfCHPy6b+a5fCck4HE9TSfI0nY
O+KqyWah2Yw3oKTQRwKvObyLc7HWKpJFpTD089N7MQKBgQDyYHd9nl5dNd+jG3ma
4yHY01ZgwtqZzQm/OiWgsJ+HCbZDlkxhEVn09LkDXMUQUD6ULtFyrr4AEl6qlC1P
oyJeO4rZPzTd1UQ/2436irBN1YdvdBFBi8DLfMe5cUokXDiWTol7ZONRtQ0W91zt
uK9oxtdXTSXE44CVkY5WC/9zNwKBgQDWwvg4TXUgUyZ4ayDHSVha1OuRl1CGaNTD
ZLVjVZ97XTj+entog6R3lwCExaNuciaNzMx4NGHJg1Wq0jVHDOVApg21kTP8VBau
NdxKTZCOjIHMmu6k1k9ksjW/X1Jvid2cGwT8mQ6bHv7NT+5juU8i6FJsXO9xn+gx
R2MBi//3bQKBgGRjIBqfZWYl0iK0VoGYYYR0w+n/ypq5GbhiVQNhJDHCDAOiVLA/
h4q1cYu6+MPw+HpXidh+F6Pf9+WeycWaQ7nT34Zrb3IRytrIDN4gYzVZo2a+JAeJ
4qhlXjOogJTevXFDxh2dg6lr26gPfCXZwI0dDkPSaDpMIA3S46kv/vWxAoGAZP02
ADPcWiD/vCyUM2J4G+53//SptyrgsilParC+2CIURQaPtawB0QK/CbBuk+c13gRq
OjRXr40E4dkLmKelvmrXk4P+cC+SosVNG9uxmHbWKsLIadclanKq95z5hN3NyjSi
ea33wlYm96EYtuhTIFUjPTXOmx3Y8CNjmTyeV1kCgYA65YzrAOYCzD43AsWDQH6N
IvDcoIEwPanvQo70g7Rm9SxWaXTJQHUcLG0y9RvyTkZhp0kNDroT9Ic5T758GmAR
VKDTSi8VMzAzfWcKE3MRagAxttrFNS+m5cLZBrhp3gxJXOsoJMBtpZdf0197cJUz
ZIOaV6+hiWAu91ihPdrMVQ==
-----END PRIVATE KEY-----
";

/// TEST ONLY: a key the provider never publishes, for tokens that must
/// fail verification.
const OTHER_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQC7c3NzOL7zE8DG
rG56iqJujbCCiZl7BiOhuiRfARkkSUJT6qlLv+1nu4Yn9+gFE0jiB8MALwzKAGA9
weT09moFYE/irjQaHVOze8BZWhHnyMD5UdM5KvzgrIrgTX+S2Y1/QR5YEbz8zC66
eVOA3Bc6qOczQjtQDRt6IHL+p7ser+QW9GpNxxTQQCOJD2ikncV+t9R69TCzlAzs
Z9hiXgwsQRRE18aIJLlMTP0btyNvOEDRfeq1u5YBTxY9l34NbdGjvJ/1oEGNfTK7
7PpVsSmoAPLl2UMi+jkRyHCyGoFq2e9efRl9qYduNYJrVaHOEUYc60WmPKclRDMM
Lm+SUPKfAgMBAAECggEAMlR+2J6RYpnYpl9w8HUdxNpFXN9ONuKAmbFth5a3Ze9H
oFl+6EhZmYMXs86T3Rz+8jWMTZXUdL5iGOLhM0agU942xNHqSmK6cRQWoscUzKux
6J9oO87HhBm/1hbo3IiOPe9Bkvr8R9IY79eYrJ4rnIPyQ+iSHV3PlVx2E9r8WnIA
nc2UNRQy8wZIIlNILllq3P+c8dhyLOoA7kqaCeErvaB9vKkKEM87MwXU8BPY3MWZ
QFLehuhHxSB5mT/DsEy1QjZI8tD1JhQ1tNKHnUxpsyjjHrq4wOFs8DdEwkjLAOw6
ivCRM2FLYDP4p0/vDpjhOo5UZSIjyxRc6TLx8MhZ4QKBgQDt76YD9zmuIC8cdgoA
iKZaayF9cFf2BTqP72wYhLZgALxIFaKivrNW1Eq6BsMozbbxAe3AKG2bX3+Rp5T2
n7dUemEU0vIhhEBASoWBF5lixKxnuP+sMSVNCBawpB8l+10Sh1tAEcfxnvr75mWJ
95uNYolCFL8QwYBbJqgXMdRrIQKBgQDJrpw9lB9QOMu5aeXWL/numiF3eGeluPl6
ijBud9XXCEla4w64ulDJ+CSYwiWgSor+TCsBpwz7UTOxzma5ceHoWQC3QHn/uUK2
GJGMYEnSwEoOuDuSsBISRNSScdzfyxDzZwOHS/gurSEnvW2GCoANrx8g7WvLv/aA
NnlQrXFlvwKBgQCglkYuFwXPB9nEE8bcZV4hWHzZ9KDpYs4Lp0QFqEyOrvBklnWV
8a+Iwu9MbpP5Th5Su0KDlsWjP+kRnVFkwpcxZQdwzo6tIF1dBu7kGdFkX+kceDfX
N7Q9MWBfB+Yd9HD0uHZV36pa4Tn0GaQeYgeSfRa2itoJrQ+8dXKtdOwxAQKBgQCv
qBz8pR4AyPbnLoy32GFep2+ulnfvpwPi7qjwDf95ogYB2vDfg6cJwc5eHfqXeVVF
1yE99zkfSsIzgwmFSuLvc1VkRgv75mdsIknicZrarA/UcjGwuRmEP97FDdbKNBs3
Y+l21Xv7a18NNbdGn66YPIZoL2FLvI39bXSMCARUEQKBgQDekf5lCi90WmvLs/OK
/XVLHZqqwuC+APWsVrXSD6TZLzqnIdmsQShPh47XhING6NHbU3Dk1B5zFcIEi2rK
BxhA9Gk+iX5X7Ae68rePcId5Ime/TesLYDCoeLAIxvr92Cdx9WPD9mCJRXwExF/l
ID5lVieyAKgQSUpc3t/FhsqNYQ==
-----END PRIVATE KEY-----
";

/// The provider's keys.
pub struct Keys {
    signing: RsaPrivateKey,
    other: RsaPrivateKey,
}

impl Keys {
    /// Parses the fixed test keys.
    pub fn load() -> Keys {
        Keys {
            signing: RsaPrivateKey::from_pkcs8_pem(SIGNING_KEY_PEM).expect("the test signing key"),
            other: RsaPrivateKey::from_pkcs8_pem(OTHER_KEY_PEM).expect("the other test key"),
        }
    }

    /// The published key set (`/jwks`): the signing key's public half.
    pub fn jwks(&self) -> Value {
        let public = self.signing.to_public_key();
        json!({
            "keys": [{
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": KEY_ID,
                "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            }]
        })
    }

    /// A compact JWS (RS256) of `claims`, signed with the published key,
    /// or with the other one when `wrong_key`.
    pub fn sign(&self, claims: &Value, wrong_key: bool) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": KEY_ID});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = if wrong_key {
            &self.other
        } else {
            &self.signing
        };
        let signature = SigningKey::<Sha256>::new(key.clone())
            .sign(signing_input.as_bytes())
            .to_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// The PKCE S256 challenge of a verifier: BASE64URL(SHA-256(verifier)).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The ID token's `at_hash` for an access token: the left half of its
/// SHA-256, BASE64URL.
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

/// The client id and secret of an HTTP Basic `Authorization` header
/// (`client_secret_basic`: each form-urlencoded before joining).
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

/// Undoes form-urlencoding (`%XX`, `+` for a space) of one value.
fn form_decode(value: &str) -> String {
    form_urlencoded::parse(format!("v={value}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
