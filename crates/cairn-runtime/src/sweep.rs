//! A sweep's runs: the parameter sets a `Job.spec.sweep` expands to (a
//! grid's combinations in declaration order, or seeded random draws),
//! and the choice of the best run by the objective. Pure, so both
//! runtimes and the planner expand a sweep alike.

use cairn_spec::{Goal, RandomParam, SweepSpec};
use indexmap::IndexMap;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// Random draws without `maxRuns`.
pub const DEFAULT_RANDOM_RUNS: u32 = 10;

/// The parameters of each run, `base` overridden by the sweep's values.
pub fn expand(sweep: &SweepSpec, base: &IndexMap<String, Value>) -> Vec<IndexMap<String, Value>> {
    let mut sets = vec![IndexMap::new()];
    for (name, values) in &sweep.grid {
        sets = sets
            .into_iter()
            .flat_map(|set: IndexMap<String, Value>| {
                values.iter().map(move |v| {
                    let mut next = set.clone();
                    next.insert(name.clone(), v.clone());
                    next
                })
            })
            .collect();
    }
    if !sweep.random.is_empty() {
        let runs = sweep.max_runs.unwrap_or(DEFAULT_RANDOM_RUNS) as usize;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(sweep.seed.unwrap_or(0));
        // Each grid point gets its share of draws (one grid point: all).
        let per_point = runs.div_ceil(sets.len()).max(1);
        sets = sets
            .into_iter()
            .flat_map(|set| {
                (0..per_point)
                    .map(|_| {
                        let mut next = set.clone();
                        for (name, p) in &sweep.random {
                            next.insert(name.clone(), draw(p, &mut rng));
                        }
                        next
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    if let Some(max) = sweep.max_runs {
        sets.truncate(max as usize);
    }
    sets.into_iter()
        .map(|set| {
            let mut params = base.clone();
            params.extend(set);
            params
        })
        .collect()
}

fn draw(p: &RandomParam, rng: &mut impl Rng) -> Value {
    match p {
        RandomParam::Choice(values) if values.is_empty() => Value::Null,
        RandomParam::Choice(values) => values[rng.random_range(0..values.len())].clone(),
        RandomParam::Range(r) => {
            let u: f64 = rng.random();
            let x = if r.log && r.min > 0.0 && r.max > 0.0 {
                (r.min.ln() + u * (r.max.ln() - r.min.ln())).exp()
            } else {
                r.min + u * (r.max - r.min)
            };
            if r.integer {
                Value::from(x.floor() as i64)
            } else {
                // Six significant digits: readable parameters, stable across platforms.
                let rounded = format!("{x:.6e}").parse::<f64>().unwrap_or(x);
                serde_json::Number::from_f64(rounded).map_or(Value::Null, Value::Number)
            }
        }
    }
}

/// The index of the best of `scores` (runs without a score are skipped).
pub fn best(goal: Goal, scores: &[Option<f64>]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, s) in scores.iter().enumerate() {
        if let Some(v) = s.filter(|v| !v.is_nan())
            && best.is_none_or(|(_, b)| goal.better(v, b))
        {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// Whether a sweep should stop starting runs: the last `patience` scores,
/// in order of finishing, did not beat the best before them.
pub fn exhausted(goal: Goal, patience: Option<u32>, finished: &[Option<f64>]) -> bool {
    let Some(p) = patience.filter(|p| *p > 0).map(|p| p as usize) else {
        return false;
    };
    if finished.len() <= p {
        return false;
    }
    let (before, recent) = finished.split_at(finished.len() - p);
    let Some(i) = best(goal, before) else {
        return false;
    };
    let best_before = before[i].expect("best has a score");
    !recent
        .iter()
        .flatten()
        .any(|v| goal.better(*v, best_before))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_spec::{Objective, RandomRange};
    use serde_json::json;

    fn sweep() -> SweepSpec {
        SweepSpec {
            objective: Objective {
                metric: "accuracy".into(),
                goal: Goal::Maximize,
            },
            max_parallel: 2,
            ..SweepSpec::default()
        }
    }

    #[test]
    fn a_grid_is_every_combination_in_order() {
        let mut s = sweep();
        s.grid
            .insert("C".into(), vec![json!(0.1), json!(1), json!(10)]);
        s.grid
            .insert("penalty".into(), vec![json!("l1"), json!("l2")]);
        let base: IndexMap<String, Value> = [
            ("C".to_string(), json!(1.0)),
            ("seed".to_string(), json!(3)),
        ]
        .into_iter()
        .collect();
        let runs = expand(&s, &base);
        assert_eq!(runs.len(), 6);
        assert_eq!(runs[0]["C"], json!(0.1));
        assert_eq!(runs[0]["penalty"], json!("l1"));
        assert_eq!(runs[1]["penalty"], json!("l2"));
        assert_eq!(runs[5]["C"], json!(10));
        assert!(runs.iter().all(|r| r["seed"] == json!(3)));
        s.max_runs = Some(4);
        assert_eq!(expand(&s, &base).len(), 4);
    }

    #[test]
    fn random_draws_are_seeded_and_in_range() {
        let mut s = sweep();
        s.random.insert(
            "C".into(),
            RandomParam::Range(RandomRange {
                min: 0.01,
                max: 100.0,
                log: true,
                integer: false,
            }),
        );
        s.random.insert(
            "k".into(),
            RandomParam::Choice(vec![json!("a"), json!("b")]),
        );
        s.seed = Some(7);
        s.max_runs = Some(5);
        let a = expand(&s, &IndexMap::new());
        assert_eq!(a.len(), 5);
        assert_eq!(a, expand(&s, &IndexMap::new()), "same seed, same runs");
        for r in &a {
            let c = r["C"].as_f64().unwrap();
            assert!((0.01..100.0).contains(&c), "{c}");
        }
        s.seed = Some(8);
        assert_ne!(a, expand(&s, &IndexMap::new()));
    }

    #[test]
    fn the_best_and_when_to_stop() {
        assert_eq!(
            best(Goal::Maximize, &[Some(0.5), None, Some(0.9), Some(0.7)]),
            Some(2)
        );
        assert_eq!(
            best(Goal::Minimize, &[Some(0.5), Some(f64::NAN), Some(0.9)]),
            Some(0)
        );
        assert_eq!(best(Goal::Maximize, &[None]), None);
        let f = [Some(0.9), Some(0.8), Some(0.85)];
        assert!(exhausted(Goal::Maximize, Some(2), &f));
        assert!(!exhausted(Goal::Maximize, Some(3), &f));
        assert!(!exhausted(Goal::Maximize, None, &f));
        assert!(!exhausted(
            Goal::Maximize,
            Some(2),
            &[Some(0.9), Some(0.8), Some(0.95)]
        ));
    }
}
