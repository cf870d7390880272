//! `cairn model-server`: serves one ONNX model in-process, the program of a
//! model's pods on Kubernetes. It speaks the protocol the gateway uses with
//! process replicas (`POST /predict` with `{"request": ...}` answered by
//! `{"response": ...}`), so the gateway still authorizes, limits, issues the
//! inference UUID and records the event.

use anyhow::{Context, Result};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use cairn_gateway::onnx::OnnxModel;
use cairn_gateway::tensor;
use cairn_spec::Signature;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The `.onnx` file.
    #[arg(long, env = "CAIRN_MODEL_ARTIFACT")]
    artifact: PathBuf,
    /// The model's signature as JSON (`{"inputs": [...], "outputs": [...]}`).
    #[arg(long, env = "CAIRN_MODEL_SIGNATURE")]
    signature: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080", env = "CAIRN_LISTEN")]
    listen: SocketAddr,
}

struct Served {
    model: OnnxModel,
    signature: Signature,
}

pub(super) fn run(args: Args) -> Result<ExitCode> {
    let bytes = std::fs::read(&args.artifact)
        .with_context(|| format!("reading {}", args.artifact.display()))?;
    let model =
        OnnxModel::load(&bytes).with_context(|| format!("loading {}", args.artifact.display()))?;
    let signature: Signature = match &args.signature {
        Some(s) => {
            serde_json::from_str(s).context("reading the signature (CAIRN_MODEL_SIGNATURE)")?
        }
        None => Signature::default(),
    };
    let served = Arc::new(Served { model, signature });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        eprintln!(
            "serving {} on http://{}",
            args.artifact.display(),
            listener.local_addr()?
        );
        let app = axum::Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/predict", post(predict))
            .with_state(served);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn predict(
    State(s): State<Arc<Served>>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let request = body.get("request").cloned().unwrap_or(body);
    let result = tokio::task::spawn_blocking(move || -> Result<Value, String> {
        let (name, datatype, _) = s.model.input();
        let (t, _rows, single) =
            tensor::request_to_tensor(&request, &s.signature.inputs, name, datatype)
                .map_err(|e| e.to_string())?;
        let outputs = s.model.run(&t).map_err(|e| e.to_string())?;
        Ok(tensor::tensors_to_response(&outputs, single))
    })
    .await;
    match result {
        Ok(Ok(response)) => (StatusCode::OK, Json(json!({ "response": response }))),
        Ok(Err(message)) => (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": e.to_string() })),
        ),
    }
}
