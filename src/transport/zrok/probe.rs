//! A look at the OpenZiti controller before libziti loads the identity: libziti 0.29 crashes
//! on a TLS server that is not a controller and hangs on one that never answers, so the
//! gateway first asks `GET /version` itself, trusting only the identity's CA, with a short
//! timeout, and wants the controller's JSON answer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

const TIMEOUT: Duration = Duration::from_secs(10);

pub async fn controller(zt_api: &str, ca_pem: &str) -> Result<(), String> {
    let uri: http::Uri = zt_api.parse().map_err(|_| format!("the identity's controller URL `{zt_api}` is invalid"))?;
    let origin = format!("https://{}", uri.authority().map(|a| a.as_str()).unwrap_or_default());
    let unreachable = |why: String| format!("the OpenZiti controller {origin} is not usable: {why}");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| unreachable(format!("the identity's CA bundle is not PEM ({e})")))?;
        roots.add(cert).map_err(|e| unreachable(format!("the identity's CA bundle is invalid ({e})")))?;
    }
    if roots.is_empty() {
        return Err(unreachable("the identity's CA bundle has no certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unreachable(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only().enable_http1().build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let asking = async {
        let resp = client
            .get(format!("{origin}/version").parse().map_err(|_| unreachable("bad URL".into()))?)
            .await
            .map_err(|e| unreachable(format!("{e:?}")))?;
        let body = resp.into_body().collect().await.map_err(|e| unreachable(e.to_string()))?.to_bytes();
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| unreachable("its /version answer is not JSON".into()))?;
        match value.pointer("/data/version").and_then(|v| v.as_str()) {
            Some(_) => Ok(()),
            None => Err(unreachable("it does not answer /version like an OpenZiti controller".into())),
        }
    };
    tokio::time::timeout(TIMEOUT, asking)
        .await
        .map_err(|_| unreachable(format!("no answer within {} s", TIMEOUT.as_secs())))?
}
