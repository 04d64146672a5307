//! The zrok controller's REST API, the calls the gateway needs, in the v1 and v2 flavours:
//! `X-TOKEN` auth, `application/zrok.v1+json` both ways, JSON bodies (also on DELETE).

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use super::Flavour;
use super::env::Environment;
use crate::transport::http::{Connecting, HttpClient, client};

const MEDIA: &str = "application/zrok.v1+json";

pub type Answer<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, String>> + Send + 'a>>;

/// The controller calls the gateway makes. [`Api`] makes them over HTTP; the tests' fake
/// controller answers them on the wire, so the real client is what they exercise.
pub trait Controller: Send + Sync {
    /// Fails unless the controller accepts this client's version (once, at startup).
    fn version_check(&self) -> Answer<'_, ()>;
    fn share(&self, public: bool) -> Answer<'_, Created>;
    fn unshare<'a>(&'a self, token: &'a str) -> Answer<'a, ()>;
    fn share_detail<'a>(&'a self, token: &'a str) -> Answer<'a, ()>;
    fn access<'a>(&'a self, share: &'a str) -> Answer<'a, String>;
    fn unaccess<'a>(&'a self, frontend: &'a str, share: &'a str) -> Answer<'a, ()>;
}

impl Controller for Api {
    fn version_check(&self) -> Answer<'_, ()> {
        Box::pin(Api::version_check(self))
    }

    fn share(&self, public: bool) -> Answer<'_, Created> {
        Box::pin(Api::share(self, public))
    }

    fn unshare<'a>(&'a self, token: &'a str) -> Answer<'a, ()> {
        Box::pin(Api::unshare(self, token))
    }

    fn share_detail<'a>(&'a self, token: &'a str) -> Answer<'a, ()> {
        Box::pin(Api::share_detail(self, token))
    }

    fn access<'a>(&'a self, share: &'a str) -> Answer<'a, String> {
        Box::pin(Api::access(self, share))
    }

    fn unaccess<'a>(&'a self, frontend: &'a str, share: &'a str) -> Answer<'a, ()> {
        Box::pin(Api::unaccess(self, frontend, share))
    }
}

pub struct Api {
    base: String,
    flavour: Flavour,
    token: HeaderValue,
    env_zid: String,
    namespace: String,
    client: HttpClient,
}

/// A share the controller created.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub token: String,
    pub frontends: Vec<String>,
}

impl Api {
    pub fn new(env: &Environment) -> Result<Self, String> {
        let mut token =
            HeaderValue::from_str(&env.token).map_err(|_| "the zrok account token is not a valid header")?;
        token.set_sensitive(true);
        let version = match env.flavour {
            Flavour::V1 => "v1",
            Flavour::V2 => "v2",
        };
        let base = format!("{}/api/{version}", env.api_endpoint);
        let connecting = Connecting { timeout: std::time::Duration::from_secs(10), idle: None };
        Ok(Self {
            client: client(connecting, &base),
            base,
            flavour: env.flavour,
            token,
            env_zid: env.ziti_identity.clone(),
            namespace: env.default_namespace.clone(),
        })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<(StatusCode, Bytes), String> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base))
            .header(header::ACCEPT, MEDIA)
            .header("x-token", self.token.clone());
        let bytes = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, MEDIA);
                Bytes::from(serde_json::to_vec(&b).expect("serializable"))
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(bytes)).map_err(|e| format!("cannot build a zrok API request: {e}"))?;
        let what = format!("zrok API {method} {path}");
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("{what} failed: {}", crate::transport::http::describe(&e)))?;
            let status = resp.status();
            let body = resp.into_body().collect().await.map_err(|e| format!("{what} broke off: {e}"))?.to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), call)
            .await
            .map_err(|_| format!("{what}: no answer within 30 s"))?
    }

    async fn version_check(&self) -> Result<(), String> {
        let version = match self.flavour {
            Flavour::V1 => "v1.1.11",
            Flavour::V2 => "v2.0.4",
        };
        let body = json!({ "clientVersion": format!("{version} [llm-gateway {}]", env!("CARGO_PKG_VERSION")) });
        let (status, answer) = self.call(Method::POST, "/clientVersionCheck", Some(body)).await?;
        expect(status, &answer, &[StatusCode::OK], "the zrok controller refused this client's version")
    }

    /// An ephemeral share of the gateway, bound by this process (`proxy` backend).
    async fn share(&self, public: bool) -> Result<Created, String> {
        let mode = if public { "public" } else { "private" };
        let mut body = json!({
            "envZId": self.env_zid, "shareMode": mode, "backendMode": "proxy",
            "authScheme": "none", "permissionMode": "open",
        });
        match self.flavour {
            Flavour::V2 => {
                body["target"] = "llm-gateway".into();
                if public {
                    body["nameSelections"] = json!([{ "namespaceToken": self.namespace }]);
                }
            }
            Flavour::V1 => {
                body["backendProxyEndpoint"] = "llm-gateway".into();
                body["reserved"] = false.into();
                if public {
                    body["frontendSelection"] = json!([self.namespace]);
                }
            }
        }
        let (status, answer) = self.call(Method::POST, "/share", Some(body)).await?;
        expect(status, &answer, &[StatusCode::CREATED, StatusCode::OK], "zrok refused to create the share")?;
        let value: Value = serde_json::from_slice(&answer).map_err(|_| "the zrok share answer is not JSON")?;
        let token =
            value["shareToken"].as_str().filter(|t| !t.is_empty()).ok_or("the zrok share answer has no token")?;
        let frontends = value["frontendProxyEndpoints"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        Ok(Created { token: token.to_owned(), frontends })
    }

    async fn unshare(&self, token: &str) -> Result<(), String> {
        let mut body = json!({ "envZId": self.env_zid, "shareToken": token });
        if self.flavour == Flavour::V1 {
            body["reserved"] = false.into();
        }
        let (status, answer) = self.call(Method::DELETE, "/unshare", Some(body)).await?;
        expect(status, &answer, &[StatusCode::OK], "zrok refused to delete the share")
    }

    /// Fails clearly when a persistent share does not exist.
    async fn share_detail(&self, token: &str) -> Result<(), String> {
        let (status, answer) = self.call(Method::GET, &format!("/detail/share/{token}"), None).await?;
        if status == StatusCode::NOT_FOUND {
            return Err("the zrok share in `zrok.share.token` does not exist".into());
        }
        expect(status, &answer, &[StatusCode::OK], "zrok refused to describe the share")
    }

    /// A private access to `share`: its frontend token.
    async fn access(&self, share: &str) -> Result<String, String> {
        let body = json!({ "envZId": self.env_zid, "shareToken": share });
        let (status, answer) = self.call(Method::POST, "/access", Some(body)).await?;
        expect(status, &answer, &[StatusCode::CREATED, StatusCode::OK], "zrok refused an access to the share")?;
        let value: Value = serde_json::from_slice(&answer).map_err(|_| "the zrok access answer is not JSON")?;
        value["frontendToken"].as_str().map(str::to_owned).ok_or_else(|| "the zrok access answer has no token".into())
    }

    async fn unaccess(&self, frontend: &str, share: &str) -> Result<(), String> {
        let body = json!({ "frontendToken": frontend, "envZId": self.env_zid, "shareToken": share });
        let (status, answer) = self.call(Method::DELETE, "/unaccess", Some(body)).await?;
        expect(status, &answer, &[StatusCode::OK], "zrok refused to release the access")
    }
}

/// An error naming the status and, when the controller sent one, its message (a bare JSON
/// string). Tokens never appear: they are not in the answers we quote.
fn expect(status: StatusCode, answer: &[u8], ok: &[StatusCode], what: &str) -> Result<(), String> {
    if ok.contains(&status) {
        return Ok(());
    }
    let message = serde_json::from_slice::<String>(answer).ok().filter(|m| !m.is_empty());
    Err(match message {
        Some(m) => format!("{what}: {} {m}", status.as_u16()),
        None => format!("{what}: {}", status.as_u16()),
    })
}
