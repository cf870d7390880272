//! `cairn plugin test`: runs a plugin locally, through the same bounded host
//! as `cairn up`, on files given on the command line.

use anyhow::{Context, Result};
use cairn_gateway::wasm::{from_wit, to_wit};
use cairn_plugin_host::apps::{App, FrameworkPlugin, app_files};
use cairn_plugin_host::columns;
use cairn_plugin_host::drift::DriftDetector;
use cairn_plugin_host::metrics::{InferenceEvent, MetricPlugin, MetricValue};
use cairn_plugin_host::model::WasmModel;
use cairn_plugin_host::{PluginHost, PluginSource, config_of};
use cairn_spec::{Duration, Memory, PluginLimits};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `cairn plugin`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PluginCommand {
    /// Run a plugin on local files and print what it returns.
    ///
    /// Exits 0 when the plugin answered, 1 when it failed (an error, a trap,
    /// a limit hit), 2 on bad arguments or unreadable files.
    Test(TestArgs),
}

/// The worlds a plugin can be tested as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum World {
    /// `fit` on `--reference`, then `score` on `--window`.
    DriftDetector,
    /// `compute` on `--event`.
    BusinessMetric,
    /// `detect` and `launch` on `--app`.
    AppFramework,
    /// `load` of `--artifact`, then `predict` on `--input`.
    Model,
}

#[derive(Debug, clap::Args)]
struct TestArgs {
    /// The component: a `.wasm` file, or `builtin:NAME`.
    plugin: String,
    /// The world to exercise.
    #[arg(long, value_enum)]
    world: World,
    /// A setting passed as the plugin's config, `KEY=VALUE` (VALUE is read
    /// as JSON when it parses, as text otherwise); repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// drift-detector: the reference sample (CSV with a header).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// drift-detector: the window to score (CSV with the same columns).
    #[arg(long)]
    window: Option<PathBuf>,
    /// drift-detector: the threshold.
    #[arg(long, default_value_t = 0.2)]
    threshold: f64,
    /// drift-detector: the features compared, comma-separated (default: all columns).
    #[arg(long, value_delimiter = ',')]
    features: Vec<String>,
    /// business-metric: an inference event as JSON (`inputs`, `outputs`, and
    /// optionally `id`, `model`, `version`, `status`, `latencyUs`).
    #[arg(long)]
    event: Option<PathBuf>,
    /// app-framework: the application's directory.
    #[arg(long)]
    app: Option<PathBuf>,
    /// model: the artifact passed to `load`.
    #[arg(long)]
    artifact: Option<PathBuf>,
    /// model: a request body, `{"request": ...}` or the request itself, with
    /// rows of numbers (`{"instances": [[...]]}`).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Memory limit per instance.
    #[arg(long, default_value = "64Mi")]
    memory: Memory,
    /// Wall-clock limit per call.
    #[arg(long, default_value = "1s")]
    timeout: Duration,
    /// Instruction budget per call.
    #[arg(long)]
    fuel: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `cairn plugin ...`.
pub fn run(args: Args) -> Result<ExitCode> {
    match args.command {
        PluginCommand::Test(a) => test(a),
    }
}

fn read(path: &Option<PathBuf>, flag: &str, world: &str) -> Result<Vec<u8>> {
    let path = path
        .as_ref()
        .with_context(|| format!("--world {world} needs --{flag}"))?;
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn parse_config(items: &[String]) -> Result<BTreeMap<String, Value>> {
    items
        .iter()
        .map(|item| {
            let (k, v) = item
                .split_once('=')
                .with_context(|| format!("--config `{item}`: expected KEY=VALUE"))?;
            let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
            Ok((k.to_string(), value))
        })
        .collect()
}

fn test(args: TestArgs) -> Result<ExitCode> {
    let source = match args.plugin.strip_prefix("builtin:") {
        Some(name) => PluginSource::Builtin(name.to_string()),
        None => PluginSource::File(PathBuf::from(&args.plugin)),
    };
    let config = config_of(&parse_config(&args.config)?);
    let limits = PluginLimits {
        memory: args.memory,
        timeout: args.timeout,
        fuel: args.fuel,
    };
    let host = PluginHost::new(None)?;
    let name = std::path::Path::new(&args.plugin)
        .file_stem()
        .map_or("plugin".into(), |s| s.to_string_lossy().into_owned());
    let plugin = host.load(&name, &source, None, &limits)?;
    let outcome: Result<Value, cairn_plugin_host::PluginError> = match args.world {
        World::DriftDetector => {
            let reference = read(&args.reference, "reference", "drift-detector")?;
            let window = read(&args.window, "window", "drift-detector")?;
            let reference = columns::select(columns::from_csv(&reference)?, &args.features)?;
            let header: Vec<String> = reference.iter().map(|c| c.name.clone()).collect();
            let window = columns::select(columns::from_csv(&window)?, &header)
                .context("the window must have the reference's columns")?;
            let detector = DriftDetector::new(plugin)?;
            detector
                .fit(&config, &reference)
                .and_then(|state| detector.score(&config, &state, &window, args.threshold))
                .map(|r| {
                    json!({
                        "score": r.score,
                        "drifted": r.drifted,
                        "rows": {"reference": columns::rows(&reference), "window": columns::rows(&window)},
                        "features": r.features.iter().map(|f| json!({
                            "feature": f.feature, "score": f.score, "pValue": f.p_value, "drifted": f.drifted,
                        })).collect::<Vec<_>>(),
                    })
                })
        }
        World::BusinessMetric => {
            let event: Value =
                serde_json::from_slice(&read(&args.event, "event", "business-metric")?)
                    .context("--event: not JSON")?;
            let text = |k: &str, default: &str| {
                event
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or(default)
                    .to_string()
            };
            let wit_event = InferenceEvent {
                id: text("id", &uuid::Uuid::now_v7().to_string()),
                model: text("model", "model"),
                version: text("version", "1"),
                timestamp_ms: chrono::Utc::now().timestamp_millis(),
                latency_us: event.get("latencyUs").and_then(Value::as_u64).unwrap_or(0),
                status: event.get("status").and_then(Value::as_u64).unwrap_or(200) as u16,
                inputs: event
                    .get("inputs")
                    .cloned()
                    .unwrap_or(Value::Null)
                    .to_string(),
                outputs: event
                    .get("outputs")
                    .cloned()
                    .unwrap_or(Value::Null)
                    .to_string(),
            };
            MetricPlugin::new(plugin)?
                .compute(&config, &wit_event)
                .map(|metrics| {
                    let map: serde_json::Map<String, Value> = metrics
                        .into_iter()
                        .map(|m| {
                            let v = match m.value {
                                MetricValue::Number(n) => json!(n),
                                MetricValue::Text(t) => json!(t),
                            };
                            (m.name, v)
                        })
                        .collect();
                    json!({ "metrics": map })
                })
        }
        World::AppFramework => {
            let dir = args
                .app
                .as_ref()
                .context("--world app-framework needs --app")?;
            let files = app_files(dir).with_context(|| format!("reading {}", dir.display()))?;
            let name = dir
                .file_name()
                .map_or("app".into(), |n| n.to_string_lossy().into_owned());
            let app = App {
                url_prefix: format!("/apps/{name}"),
                path: dir.display().to_string(),
                name,
                files,
                command: Vec::new(),
                env: Vec::new(),
            };
            let framework = FrameworkPlugin::new(plugin)?;
            framework.detect(&config, &app).and_then(|detected| {
                framework.launch(&config, &app).map(|l| {
                    json!({
                        "detected": detected,
                        "command": l.command, "env": l.env, "port": l.port, "healthPath": l.health_path,
                    })
                })
            })
        }
        World::Model => {
            let artifact = match &args.artifact {
                Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
                None => Vec::new(),
            };
            let body: Value = serde_json::from_slice(&read(&args.input, "input", "model")?)
                .context("--input: not JSON")?;
            let request = body.get("request").cloned().unwrap_or(body);
            let (tensor, _, single) = cairn_gateway::tensor::request_to_tensor(
                &request,
                &[],
                "input",
                cairn_gateway::tensor::DataType::Fp32,
            )
            .map_err(|e| anyhow::anyhow!("--input: {e}"))?;
            WasmModel::new(plugin, config, artifact, 1).and_then(|model| {
                let outputs = model.predict(&[to_wit(tensor)])?;
                let outputs = outputs
                    .into_iter()
                    .map(from_wit)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(cairn_plugin_host::PluginError::Failed)?;
                Ok(json!({"response": cairn_gateway::tensor::tensors_to_response(&outputs, single)}))
            })
        }
    };
    match outcome {
        Ok(value) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print_human(args.world, &value);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if args.json {
                println!("{}", json!({"error": e.to_string()}));
            }
            eprintln!("error: plugin `{}`: {e}", args.plugin);
            Ok(ExitCode::from(1))
        }
    }
}

fn print_human(world: World, value: &Value) {
    if world == World::DriftDetector {
        println!(
            "{:<24} {:>12} {:>12}  drifted",
            "feature", "score", "p-value"
        );
        for f in value["features"].as_array().into_iter().flatten() {
            let p = f["pValue"]
                .as_f64()
                .map_or("-".to_string(), |p| format!("{p:.6}"));
            println!(
                "{:<24} {:>12.6} {:>12}  {}",
                f["feature"].as_str().unwrap_or(""),
                f["score"].as_f64().unwrap_or(f64::NAN),
                p,
                if f["drifted"] == true { "yes" } else { "no" }
            );
        }
        println!(
            "overall score {:.6}: {}",
            value["score"].as_f64().unwrap_or(f64::NAN),
            if value["drifted"] == true {
                "drifted"
            } else {
                "no drift"
            }
        );
        return;
    }
    println!("{value:#}");
}
