//! `cairn up`: the controller, the embedded runtime and the HTTP server in
//! one process.

use super::RepoArgs;
use super::credentials;
use crate::cli::kube::{KubeArgs, RuntimeKind};
use anyhow::{Context, Result, bail};
use cairn_controller::{Controller, Settings, WatchOptions, spawn_watchers};
use cairn_runtime_embedded::EmbeddedRuntime;
use cairn_runtime_embedded::gpu::{GpuInventory, GpuSource};
use cairn_runtime_kubernetes::KubernetesRuntime;
use cairn_server::api::AppState;
use cairn_server::app::AuthSettings;
use cairn_server::auth::layer::AuthMode;
use cairn_server::gateway::GatewayState;
use cairn_server::hooks::WebhookConfig;
use cairn_server::proxy::ProxyClient;
use cairn_server::runtime::AnyRuntime;
use cairn_source::{Credentials, RepoLocation};
use cairn_store::Store;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// The branch to follow (default: the checked-out branch, or the
    /// remote's default branch).
    #[arg(long)]
    rev: Option<String>,
    /// Address of the HTTP server (API, webhooks, applications).
    #[arg(long, default_value = "127.0.0.1:8080", env = "CAIRN_LISTEN")]
    listen: SocketAddr,
    /// A host name clients may reach the server by, beside `localhost` and
    /// the listening address (repeatable). Requests naming any other host
    /// are refused (DNS rebinding). On every interface (`0.0.0.0`), any
    /// name unless some are given.
    #[arg(
        long = "allowed-host",
        env = "CAIRN_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<String>,
    /// An origin (`https://ui.example.com`) whose pages may call the API
    /// (repeatable). Without one, cross-origin pages can neither change nor
    /// read anything.
    #[arg(
        long = "cors-origin",
        env = "CAIRN_CORS_ORIGINS",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,
    /// Who may call the server: `tokens` (API tokens and dashboard
    /// sessions; an admin token is made on first start) or `none` (anyone
    /// who reaches the port is an operator: for throwaway local use only).
    #[arg(long, value_enum, default_value_t = AuthArg::Tokens, env = "CAIRN_AUTH")]
    auth: AuthArg,
    /// The issuer of an OpenID Connect provider people sign in to the
    /// dashboard with (`https://login.example.com/realms/ml`).
    #[arg(long, env = "CAIRN_OIDC_ISSUER")]
    oidc_issuer: Option<String>,
    /// This server's client id at the provider.
    #[arg(long, env = "CAIRN_OIDC_CLIENT_ID", requires = "oidc_issuer")]
    oidc_client_id: Option<String>,
    /// The client's secret (none for a public client).
    #[arg(long, env = "CAIRN_OIDC_CLIENT_SECRET", hide_env_values = true)]
    oidc_client_secret: Option<String>,
    /// The ID token claim listing a user's groups.
    #[arg(long, default_value = cairn_server::oidc::DEFAULT_GROUPS_CLAIM, env = "CAIRN_OIDC_GROUPS_CLAIM")]
    oidc_groups_claim: String,
    /// A group of the provider whose members are operators (repeatable).
    #[arg(
        long = "oidc-admin-group",
        env = "CAIRN_OIDC_ADMIN_GROUPS",
        value_delimiter = ','
    )]
    oidc_admin_groups: Vec<String>,
    /// The URL people reach the server at, when it is not the listening
    /// address (behind a proxy or TLS): sign-in links, and `Secure` cookies
    /// for `https://`.
    #[arg(long, env = "CAIRN_PUBLIC_URL")]
    public_url: Option<String>,
    /// A second address serving the gateway only (predictions, the Open
    /// Inference Protocol, feedback, metrics by inference id, and
    /// applications), to expose where the API should not be.
    #[arg(long, env = "CAIRN_GATEWAY_LISTEN")]
    gateway_listen: Option<SocketAddr>,
    /// Where state lives (default: `.cairn/` beside a local repository, or
    /// a per-repository directory under the user data directory).
    #[arg(long, env = "CAIRN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Apply the files on disk as they are saved, committed or not (development mode).
    #[arg(long)]
    watch_worktree: bool,
    /// How often a remote repository is fetched.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// How often everything is re-checked even without a new commit.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    resync: Duration,
    /// Secret for verifying push webhooks (HMAC-SHA256 or GitLab token).
    #[arg(long, env = "CAIRN_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// On exit, leave jobs and applications running for the next `cairn up` to adopt.
    #[arg(long)]
    detach: bool,
    /// Where workloads run.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Embedded, env = "CAIRN_RUNTIME")]
    runtime: RuntimeKind,
    /// How often the Kubernetes runtime reads status from the cluster.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    status_interval: Duration,
    #[command(flatten)]
    kube: KubeArgs,
}

/// Who may call the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum AuthArg {
    /// API tokens and dashboard sessions.
    Tokens,
    /// Anyone is an operator.
    None,
}

pub(super) fn run(args: Args) -> Result<ExitCode> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(up(args))
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CAIRN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .compact()
        .try_init();
}

async fn up(args: Args) -> Result<ExitCode> {
    // Bind first: a taken port is the most common mistake and must be clear.
    let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "{} is already in use (is another `cairn up` running?); choose another address with --listen",
                args.listen
            )
        } else {
            anyhow::anyhow!("cannot listen on {}: {e}", args.listen)
        }
    })?;
    let local = listener.local_addr()?;

    let location = RepoLocation::parse(&args.repo.repo);
    let remote = matches!(location, RepoLocation::Remote(_));
    if remote && args.watch_worktree {
        bail!("--watch-worktree needs a local repository");
    }
    let source = tokio::task::block_in_place(|| args.repo.open())?;
    let rev = match &args.rev {
        Some(r) => r.clone(),
        None => source.current_branch().unwrap_or_else(|| "HEAD".into()),
    };
    let data_dir = match (&args.data_dir, &location) {
        (Some(d), _) => d.clone(),
        (None, RepoLocation::Local(path)) => path.join(".cairn"),
        (None, RepoLocation::Remote(url)) => {
            crate::cli::default_data_dir().join(crate::cli::url_dir_name(url))
        }
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    // Workloads run in other directories: the data directory must be absolute.
    let data_dir = data_dir.canonicalize()?;
    // Never commit the data directory by accident.
    let _ = std::fs::write(data_dir.join(".gitignore"), "*\n");
    let store = Arc::new(Store::open(&data_dir.join("cairn.db")).context("opening the store")?);

    let runtime = match args.runtime {
        RuntimeKind::Embedded => {
            let gpus = GpuInventory::discover();
            match gpus.source {
                GpuSource::None => tracing::info!(
                    "no GPUs: {}",
                    gpus.note.as_deref().unwrap_or("NVML not available")
                ),
                _ => tracing::info!(
                    "GPUs: {}",
                    gpus.devices
                        .iter()
                        .map(|d| format!("{} {}", d.index, d.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
            let embedded = EmbeddedRuntime::new(store.clone(), &data_dir, gpus)?;
            embedded.set_server_url(server_url(local));
            embedded.set_workload_tokens(args.auth == AuthArg::Tokens);
            AnyRuntime::Embedded(embedded)
        }
        RuntimeKind::Kubernetes => {
            let client = args.kube.client().await?;
            let followed = match &location {
                RepoLocation::Remote(url) => Some(url.as_str()),
                RepoLocation::Local(_) => None,
            };
            let settings = args.kube.objects.settings(followed);
            if settings.repo_url.is_none() {
                tracing::warn!(
                    "no repository URL for pods (--repo-url): workloads get no files from the repository"
                );
            }
            let kube = KubernetesRuntime::new(
                client,
                settings,
                args.kube.policy(),
                store.clone(),
                &data_dir,
            )?;
            tracing::info!("runtime: Kubernetes (field manager `cairn`)");
            AnyRuntime::Kubernetes(kube)
        }
    };
    let runtime = Arc::new(runtime);
    let controller = Arc::new(Controller::new(
        runtime.clone(),
        store.clone(),
        source,
        Credentials::from_env(),
        Settings {
            rev: rev.clone(),
            worktree: args.watch_worktree,
            data_dir: data_dir.clone(),
        },
    ));
    tracing::info!(
        "cairn up: {} @ {rev}, state in {}, listening on http://{local}",
        controller
            .source()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .display(),
        data_dir.display()
    );
    // Events, monitoring rows and access keys stored before they named
    // their model's project go to the one project serving that name.
    let models: Vec<cairn_spec::ResourceKey> = store
        .applied()?
        .into_iter()
        .map(|a| a.key)
        .filter(|k| k.kind == cairn_spec::Kind::Model)
        .collect();
    tokio::task::block_in_place(|| runtime.gateway().adopt_unattributed(&models));
    tokio::task::block_in_place(|| controller.restore())?;
    // On Kubernetes the first sync always runs, even for a commit already
    // synced: it rebuilds what the drift watcher and the status refresh follow.
    let force = args.runtime == RuntimeKind::Kubernetes;
    if let Err(e) = controller.reconcile(cairn_store::now(), force).await {
        tracing::warn!("first sync failed: {e:#}");
    }
    // Watching starts once the first sync applied everything: its own
    // writes are then known and not mistaken for drift.
    if let AnyRuntime::Kubernetes(kube) = runtime.as_ref() {
        kube.spawn_background(args.status_interval);
    }
    let watchers = spawn_watchers(
        controller.clone(),
        WatchOptions {
            poll: remote.then_some(args.poll_interval),
            worktree: args.watch_worktree,
            resync: args.resync,
        },
    )
    .context("watching the repository")?;

    // New artifacts promoted through Git: pin commits, then a sync.
    if let Some(mut promotions) = runtime.take_promotions() {
        let controller = controller.clone();
        let trigger = watchers.trigger.clone();
        tokio::spawn(async move {
            while let Some(request) = promotions.recv().await {
                let c = controller.clone();
                let r = request.clone();
                let pinned = tokio::task::spawn_blocking(move || {
                    c.pin_model(&r.model, &r.sha256, &r.message, r.promotion)
                })
                .await;
                match pinned {
                    Ok(Ok(p)) => {
                        tracing::info!(
                            "{}: artifact {} pinned by commit {} on {}",
                            request.model,
                            &request.sha256[..12],
                            &p.commit[..12],
                            p.branch
                        );
                        if p.on_followed_branch {
                            let _ = trigger
                                .send(cairn_controller::Trigger::Changed {
                                    detected_at: cairn_store::now(),
                                })
                                .await;
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!("{}: promotion failed: {e}", request.model);
                        let _ = controller.store().audit(
                            None,
                            Some(&request.model),
                            "promote-failed",
                            &e.to_string(),
                        );
                    }
                    Err(e) => tracing::warn!("{}: promotion failed: {e}", request.model),
                }
            }
        });
    }

    let app_state = AppState {
        controller: controller.clone(),
        hooks: WebhookConfig {
            secret: args.webhook_secret.clone(),
        },
        trigger: watchers.trigger.clone(),
        remote,
        proxy: ProxyClient::new(),
    };
    let gateway_state = GatewayState {
        gateway: runtime.gateway(),
        store: store.clone(),
        summaries: runtime.summaries(),
    };
    let guard = cairn_server::guard::Guard {
        hosts: cairn_server::guard::Hosts::for_listen(local, &args.allowed_hosts),
        origins: args.cors_origins.clone(),
    };
    let url = server_url(local);
    let public_url = args.public_url.clone().unwrap_or_else(|| url.clone());
    let mode = match args.auth {
        AuthArg::Tokens => AuthMode::Required,
        AuthArg::None => AuthMode::Off,
    };
    let oidc = match (&args.oidc_issuer, &args.oidc_client_id) {
        (Some(issuer), Some(client_id)) => {
            let mut config = cairn_server::oidc::OidcConfig::new(
                issuer.clone(),
                client_id.clone(),
                args.oidc_client_secret.clone(),
                format!("{}/auth/oidc/callback", public_url.trim_end_matches('/')),
            );
            config.groups_claim = args.oidc_groups_claim.clone();
            let client = cairn_server::oidc::Oidc::discover(config)
                .await
                .with_context(|| format!("the identity provider {issuer}"))?;
            tracing::info!("sign-in through {issuer}");
            Some(cairn_server::auth::oidc_login::OidcLogin::new(
                client,
                args.oidc_admin_groups.clone(),
            ))
        }
        (Some(_), None) => bail!("--oidc-issuer needs --oidc-client-id"),
        _ => None,
    };
    let server = cairn_server::app::build(
        app_state,
        gateway_state,
        AuthSettings {
            mode,
            secure_cookies: public_url.starts_with("https://"),
            oidc,
        },
        guard,
    );
    // The access rules follow what is applied.
    {
        let auth = server.auth.clone();
        let mut synced = controller.subscribe_synced();
        tokio::spawn(async move {
            while synced.changed().await.is_ok() {
                let auth = auth.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(e) = auth.refresh_access() {
                        tracing::warn!("reading the projects' access rules: {e}");
                    }
                    if let Err(e) = auth.store.flush_token_use() {
                        tracing::warn!("recording tokens' last use: {e}");
                    }
                })
                .await;
            }
        });
    }
    match args.auth {
        AuthArg::None => tracing::warn!(
            "authentication is off (--auth none): anyone who reaches {url} is an operator"
        ),
        AuthArg::Tokens => {
            let (token, made) =
                tokio::task::block_in_place(|| credentials::admin_token(&store, &data_dir))?;
            let file = data_dir.join(credentials::ADMIN_TOKEN_FILE);
            match credentials::write_runtime_file(&url, &token, &data_dir) {
                Ok(path) => tracing::debug!("runtime file {}", path.display()),
                Err(e) => {
                    tracing::warn!("the local command line will not find the admin token: {e:#}")
                }
            }
            if made && std::io::stderr().is_terminal() {
                // Once, to a person: as Jupyter does.
                eprintln!(
                    "\n    Sign in to the dashboard with this link (the token is also in {}):\n\n        {public_url}/login?token={token}\n",
                    file.display()
                );
            } else {
                tracing::info!(
                    "sign in at {public_url}/login with the admin token in {}",
                    file.display()
                );
            }
        }
    }
    let gateway_server = match args.gateway_listen {
        None => None,
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--gateway-listen)"))?;
            tracing::info!("gateway only on http://{}", listener.local_addr()?);
            let router = server.gateway.clone();
            Some(tokio::spawn(async move {
                axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown_signal())
                .await
            }))
        }
    };
    axum::serve(
        listener,
        server
            .full
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    if let Some(g) = gateway_server {
        g.abort();
    }
    credentials::remove_runtime_file(&url);
    let _ = store.flush_token_use();
    tracing::info!(
        "shutting down{}",
        if args.detach {
            "; workloads keep running"
        } else {
            ""
        }
    );
    runtime.shutdown(args.detach).await;
    drop(watchers);
    Ok(ExitCode::SUCCESS)
}

/// The URL workloads reach the server at: the listening address, with
/// loopback for an unspecified one (`0.0.0.0`, `::`).
fn server_url(mut local: SocketAddr) -> String {
    if local.ip().is_unspecified() {
        local.set_ip(match local {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{local}")
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
