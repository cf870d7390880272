//! `cairn tokens` (API tokens: create, list, revoke) and `cairn whoami`.

use super::OutputFormat;
use super::client::{Server, json_or_error, print_table, query_value};
use anyhow::Result;
use cairn_api::auth::{CreateToken, NewToken, RevokedToken, TokenList, WhoAmI};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(super) struct TokensArgs {
    #[command(subcommand)]
    action: TokensAction,
    #[command(flatten)]
    server: Server,
}

#[derive(Debug, clap::Subcommand)]
enum TokensAction {
    /// Make a token (its secret is printed once).
    Create {
        /// The project it acts in (leave out for `--role admin`).
        #[arg(long)]
        project: Option<String>,
        /// `viewer`, `editor`, `owner` or `admin`.
        #[arg(long)]
        role: String,
        /// How long it works (`90d`, `12h`); by default, until revoked.
        #[arg(long)]
        expires: Option<String>,
        /// What it is for.
        #[arg(long, default_value = "made with cairn tokens create")]
        name: String,
    },
    /// List the tokens you may manage (not their secrets).
    List {
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = OutputFormat::Human)]
        output: OutputFormat,
    },
    /// Revoke a token at once.
    Revoke {
        /// The token's id (`tok_…`).
        id: String,
    },
}

/// `cairn tokens`.
pub(super) fn tokens(args: TokensArgs) -> Result<ExitCode> {
    match args.action {
        TokensAction::Create {
            project,
            role,
            expires,
            name,
        } => {
            let v: NewToken = args.server.post(
                "/api/v1/tokens",
                &CreateToken {
                    name,
                    project,
                    role,
                    expires_in: expires,
                },
            )?;
            println!("{}", v.token);
            eprintln!(
                "created {} ({} in {}{}); the token is shown only this once: send it as `Authorization: Bearer TOKEN` or set CAIRN_TOKEN",
                v.info.id,
                v.info.role,
                v.info.project.as_deref().unwrap_or("every project"),
                v.info
                    .expires_at
                    .as_deref()
                    .map_or(String::new(), |e| format!(", until {e}")),
            );
        }
        TokensAction::List { output } => {
            let v: TokenList = args.server.get("/api/v1/tokens")?;
            if output == OutputFormat::Json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<[String; 7]> = v
                .tokens
                .iter()
                .map(|t| {
                    [
                        t.id.clone(),
                        t.project.clone().unwrap_or_else(|| "*".into()),
                        t.role.clone(),
                        t.name.clone(),
                        t.expires_at.clone().unwrap_or_else(|| "never".into()),
                        t.last_used_at.clone().unwrap_or_else(|| "never".into()),
                        t.revoked_at
                            .as_ref()
                            .map_or("active".to_string(), |r| format!("revoked {r}")),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "PROJECT",
                    "ROLE",
                    "NAME",
                    "EXPIRES",
                    "LAST USED",
                    "STATE",
                ],
                &rows,
            );
        }
        TokensAction::Revoke { id } => {
            args.server.await_server();
            let mut response = args
                .server
                .agent()
                .delete(
                    &args
                        .server
                        .url(&format!("/api/v1/tokens/{}", query_value(&id))),
                )
                .call()
                .map_err(|e| args.server.unreachable(e))?;
            let v: RevokedToken = json_or_error(&mut response)?;
            eprintln!("revoked {}", v.revoked);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(super) struct WhoAmIArgs {
    #[command(flatten)]
    server: Server,
}

/// `cairn whoami`.
pub(super) fn whoami(args: WhoAmIArgs) -> Result<ExitCode> {
    let v: WhoAmI = args.server.get("/api/v1/whoami")?;
    println!("{}{}", v.subject, if v.admin { " (operator)" } else { "" });
    for p in &v.projects {
        println!("  {}: {}", p.project, p.role);
    }
    if !v.groups.is_empty() {
        println!("  groups: {}", v.groups.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
