//! Monitoring: business metrics and delayed ground truth joined to
//! inferences by UUID ([`ingest`]), aggregation per version and window
//! ([`aggregate`], pure), the reports and the dashboard's kept summaries
//! ([`summary`]), drift verdicts ([`drift`]), business-metric plugins off the
//! request path ([`business`]) and the canary analysis that promotes or rolls
//! back a rollout ([`rollout`]).

pub mod aggregate;
pub mod business;
pub mod drift;
pub mod ingest;
pub mod rollout;
pub mod summary;

#[cfg(test)]
mod tests;
