//! What a workload inherits of the controller's environment: an allow-list,
//! never the controller's credentials.
//!
//! Jobs, applications and process models start from an empty environment.
//! They get the variables a program needs to run on this machine (`PATH`,
//! `HOME`, the locale, the time zone, the temporary directory, proxies and
//! CA bundles, the dynamic loader's path for GPU libraries), then what Cairn
//! sets for them (`CAIRN_*`: server, inputs, params, GPUs) and their spec's
//! `env`. The operator may name more in `CAIRN_WORKLOAD_ENV`
//! (comma-separated); a `CAIRN_*` name there is ignored, so that
//! `CAIRN_GIT_TOKEN`, `CAIRN_WEBHOOK_SECRET` and the like never reach a
//! workload.

use std::ffi::OsString;

/// The variables a workload inherits when the controller has them.
pub const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TERM",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "LD_LIBRARY_PATH",
];

/// The operator's additions to [`INHERITED`].
pub const EXTRA_VAR: &str = "CAIRN_WORKLOAD_ENV";

/// Whether a workload inherits the controller's variable `name`, given the
/// operator's additions (`extra`, as in [`EXTRA_VAR`]).
pub fn inherits(name: &str, extra: &str) -> bool {
    if INHERITED.contains(&name) || name.starts_with("LC_") {
        return true;
    }
    !name.starts_with("CAIRN_") && extra.split(',').any(|n| n.trim() == name)
}

/// The part of the controller's environment (`vars`) a workload starts
/// with; names and values that are not Unicode are left out.
pub fn inherited(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<(String, String)> {
    let vars: Vec<(String, String)> = vars
        .into_iter()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let extra = vars
        .iter()
        .find(|(k, _)| k == EXTRA_VAR)
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    vars.into_iter()
        .filter(|(k, _)| inherits(k, &extra))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn credentials_stay_with_the_controller() {
        let got = inherited(env(&[
            ("PATH", "/usr/bin"),
            ("HOME", "/home/a"),
            ("LC_ALL", "C.UTF-8"),
            ("https_proxy", "http://proxy:3128"),
            ("CAIRN_GIT_TOKEN", "ghp_secret"),
            ("CAIRN_WEBHOOK_SECRET", "hook"),
            ("AWS_SECRET_ACCESS_KEY", "aws"),
            ("DATABASE_URL", "postgres://u:p@h/db"),
        ]));
        let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["PATH", "HOME", "LC_ALL", "https_proxy"]);
    }

    #[test]
    fn the_operator_adds_names_but_never_cairn_ones() {
        let got = inherited(env(&[
            ("CAIRN_WORKLOAD_ENV", "PIP_INDEX_URL, CAIRN_GIT_TOKEN"),
            ("PIP_INDEX_URL", "https://mirror/simple"),
            ("CAIRN_GIT_TOKEN", "ghp_secret"),
            ("OTHER", "x"),
        ]));
        assert_eq!(
            got,
            [(
                "PIP_INDEX_URL".to_string(),
                "https://mirror/simple".to_string()
            )]
        );
    }
}
