use super::*;

fn store() -> Store {
    Store::open_in_memory().unwrap()
}

fn metric(key: &str, value: f64, step: i64) -> Metric {
    Metric {
        key: key.into(),
        value,
        timestamp_ms: 1_000 + step,
        step,
    }
}

fn new_run(experiment_id: i64, name: &str) -> NewRun {
    NewRun {
        experiment_id,
        name: Some(name.into()),
        user: "token:tok_1".into(),
        ..NewRun::default()
    }
}

#[test]
fn experiments_are_created_found_and_unique() {
    let s = store();
    let t = s.tracking();
    let e = t
        .create_experiment(
            "lab/probe",
            Some("lab"),
            None,
            &[KeyValue::new("team", "a")],
        )
        .unwrap();
    assert_eq!(e.artifact_location, format!("mlflow-artifacts:/{}", e.id));
    assert_eq!(t.experiment_by_name("lab/probe").unwrap(), e);
    assert!(matches!(
        t.create_experiment("lab/probe", Some("lab"), None, &[]),
        Err(TrackingError::AlreadyExists(_))
    ));
    assert!(matches!(t.experiment(99), Err(TrackingError::NotFound(_))));
    let job = t.job_experiment(Some("lab"), "train", None).unwrap();
    assert_eq!(job.name, "lab/train");
    assert_eq!(job.job.as_deref(), Some("train"));
    assert_eq!(
        t.job_experiment(Some("lab"), "train", None).unwrap().id,
        job.id
    );
    let found = t
        .search_experiments("tags.team = 'a'", ViewType::ActiveOnly, 10, &[], None)
        .unwrap();
    assert_eq!(found.items.len(), 1);
    t.set_experiment_lifecycle(e.id, Lifecycle::Deleted)
        .unwrap();
    let active = t
        .search_experiments("name LIKE 'lab/%'", ViewType::ActiveOnly, 10, &[], None)
        .unwrap();
    assert_eq!(
        active
            .items
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        ["lab/train"]
    );
    assert!(
        t.create_run(&new_run(e.id, "x")).is_err(),
        "no runs in a deleted experiment"
    );
}

#[test]
fn runs_log_metrics_params_and_tags() {
    let s = store();
    let t = s.tracking();
    let e = t.create_experiment("e", None, None, &[]).unwrap();
    let run = t.create_run(&new_run(e.id, "first")).unwrap();
    assert_eq!(run.info.id.len(), 32);
    assert_eq!(run.info.status, RunStatus::Running);
    assert_eq!(run.tag(RUN_NAME_TAG), Some("first"));
    assert_eq!(
        run.info.artifact_uri,
        format!("mlflow-artifacts:/{}/{}/artifacts", e.id, run.info.id)
    );
    let id = &run.info.id;
    t.log_batch(
        id,
        &[
            metric("loss", 1.0, 0),
            metric("loss", 0.5, 1),
            metric("loss", 0.25, 2),
        ],
        &[KeyValue::new("C", "1.0")],
        &[KeyValue::new("t", "v")],
    )
    .unwrap();
    // The same point again (MLflow's log_model re-sends metrics) is kept once.
    t.log_batch(id, &[metric("loss", 0.25, 2)], &[], &[])
        .unwrap();
    // Logged late but at an earlier step: the latest stays at step 2.
    t.log_batch(id, &[metric("loss", 9.0, 0)], &[], &[])
        .unwrap();
    t.log_batch(id, &[metric("nan", f64::NAN, 0)], &[], &[])
        .unwrap();
    let got = t.run(id).unwrap();
    assert_eq!(got.metric("loss"), Some(0.25));
    assert!(got.metric("nan").unwrap().is_nan());
    assert_eq!(got.param("C"), Some("1.0"));
    assert_eq!(got.tag("t"), Some("v"));
    let history = t.metric_history(id, "loss", 2, None).unwrap();
    assert_eq!(
        history.items.iter().map(|m| m.value).collect::<Vec<_>>(),
        [1.0, 9.0]
    );
    let rest = t
        .metric_history(id, "loss", 2, history.next_page_token.as_deref())
        .unwrap();
    assert_eq!(rest.items.len(), 2);
    assert!(rest.next_page_token.is_none());

    // Same value again: fine; another value: refused, and nothing of the batch is kept.
    t.log_batch(id, &[], &[KeyValue::new("C", "1.0")], &[])
        .unwrap();
    let err = t
        .log_batch(
            id,
            &[metric("kept", 1.0, 0)],
            &[KeyValue::new("C", "2.0")],
            &[],
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Changing param values is not allowed"),
        "{err}"
    );
    assert_eq!(t.run(id).unwrap().metric("kept"), None);

    let info = t
        .update_run(id, Some(RunStatus::Finished), None, Some("renamed"))
        .unwrap();
    assert_eq!(info.status, RunStatus::Finished);
    assert!(info.end_ms.is_some());
    assert_eq!(t.run(id).unwrap().tag(RUN_NAME_TAG), Some("renamed"));
    t.delete_run_tag(id, "t").unwrap();
    assert!(matches!(
        t.delete_run_tag(id, "t"),
        Err(TrackingError::NotFound(_))
    ));
    t.set_run_lifecycle(id, Lifecycle::Deleted).unwrap();
    assert!(matches!(
        t.log_batch(id, &[metric("x", 1.0, 0)], &[], &[]),
        Err(TrackingError::Invalid(_))
    ));
    assert!(matches!(t.run("nope"), Err(TrackingError::NotFound(_))));
}

#[test]
fn batches_and_names_are_bounded() {
    let s = store();
    let t = s.tracking();
    let e = t.create_experiment("e", None, None, &[]).unwrap();
    let id = t.create_run(&new_run(e.id, "r")).unwrap().info.id;
    let many: Vec<Metric> = (0..1001).map(|i| metric("m", 1.0, i)).collect();
    assert!(
        t.log_batch(&id, &many, &[], &[])
            .unwrap_err()
            .to_string()
            .contains("at most 1000")
    );
    assert!(
        t.log_batch(&id, &[metric("../x", 1.0, 0)], &[], &[])
            .is_err()
    );
    assert!(
        t.log_batch(&id, &[metric("/abs", 1.0, 0)], &[], &[])
            .is_err()
    );
    let long = KeyValue::new("p", "x".repeat(6001));
    assert!(t.log_batch(&id, &[], &[long], &[]).is_err());
    assert!(t.run(&id).unwrap().params.is_empty());
}

#[test]
fn runs_are_searched_with_filters_and_orders() {
    let s = store();
    let t = s.tracking();
    let e = t.create_experiment("e", None, None, &[]).unwrap();
    for (i, c) in ["0.1", "1", "10"].iter().enumerate() {
        let id = t
            .create_run(&new_run(e.id, &format!("run-{i}")))
            .unwrap()
            .info
            .id;
        t.log_batch(
            &id,
            &[metric("acc", 0.8 + i as f64 / 20.0, 0)],
            &[KeyValue::new("C", *c)],
            &[KeyValue::new("kind", if i == 1 { "Best" } else { "other" })],
        )
        .unwrap();
    }
    let no_metric = t.create_run(&new_run(e.id, "bare")).unwrap().info.id;
    let query = |filter: &str, order: &[&str]| {
        t.search_runs(&RunQuery {
            experiment_ids: vec![e.id],
            filter: filter.into(),
            max_results: 100,
            order_by: order.iter().map(|s| s.to_string()).collect(),
            ..RunQuery::default()
        })
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.info.name)
        .collect::<Vec<_>>()
    };
    assert_eq!(
        query("metrics.acc > 0.84", &["metrics.acc DESC"]),
        ["run-2", "run-1"]
    );
    assert_eq!(
        query("params.C IN ('1', '10')", &["params.C"]),
        ["run-1", "run-2"]
    );
    assert_eq!(query("tags.kind LIKE 'B%'", &[]), ["run-1"]);
    assert!(
        query("tags.kind LIKE 'b%'", &[]).is_empty(),
        "LIKE is case-sensitive"
    );
    assert_eq!(query("tags.kind ILIKE 'b%'", &[]), ["run-1"]);
    assert_eq!(query("attributes.run_name = 'bare'", &[]), ["bare"]);
    // Runs without the metric come last in either direction.
    assert_eq!(query("", &["metrics.acc ASC"]).last().unwrap(), "bare");
    assert_eq!(query("", &["metrics.acc DESC"]).last().unwrap(), "bare");
    t.set_run_lifecycle(&no_metric, Lifecycle::Deleted).unwrap();
    assert_eq!(query("", &[]).len(), 3);
    // Pages.
    let first = t
        .search_runs(&RunQuery {
            experiment_ids: vec![e.id],
            max_results: 2,
            ..RunQuery::default()
        })
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let second = t
        .search_runs(&RunQuery {
            experiment_ids: vec![e.id],
            max_results: 2,
            page_token: first.next_page_token.clone(),
            ..RunQuery::default()
        })
        .unwrap();
    assert_eq!(second.items.len(), 1);
    assert!(second.next_page_token.is_none());
}

#[test]
fn job_runs_inputs_outputs_and_logged_models() {
    let s = store();
    let t = s.tracking();
    let e = t.job_experiment(Some("lab"), "train", None).unwrap();
    let run = t
        .create_run(&NewRun {
            job_run: Some(7),
            ..new_run(e.id, "train-1")
        })
        .unwrap();
    t.log_batch(&run.info.id, &[metric("accuracy", 0.93, 0)], &[], &[])
        .unwrap();
    assert_eq!(t.run_of_job_run(7).unwrap().unwrap().info.id, run.info.id);
    assert_eq!(t.job_run_metric(7, "accuracy").unwrap(), Some(0.93));
    assert_eq!(t.job_run_metric(8, "accuracy").unwrap(), None);
    let input = DatasetInput {
        dataset: Dataset {
            name: "train".into(),
            digest: "abc".into(),
            source_type: "local".into(),
            source: "{}".into(),
            schema: None,
            profile: None,
        },
        tags: vec![KeyValue::new("mlflow.data.context", "train")],
    };
    t.log_inputs(&run.info.id, &[input.clone(), input.clone()])
        .unwrap();
    let m = t
        .create_logged_model(
            e.id,
            "model",
            "",
            Some(&run.info.id),
            &[KeyValue::new("C", "1")],
            &[],
        )
        .unwrap();
    assert!(m.id.starts_with("m-"));
    assert_eq!(m.status, "LOGGED_MODEL_PENDING");
    assert_eq!(
        t.finalize_logged_model(&m.id, "LOGGED_MODEL_READY")
            .unwrap()
            .status,
        "LOGGED_MODEL_READY"
    );
    assert!(t.finalize_logged_model(&m.id, "DONE").is_err());
    t.log_outputs(
        &run.info.id,
        &[ModelOutput {
            model_id: m.id.clone(),
            step: 0,
        }],
    )
    .unwrap();
    let got = t.run(&run.info.id).unwrap();
    assert_eq!(got.inputs, vec![input]);
    assert_eq!(got.outputs[0].model_id, m.id);
    let found = t
        .search_logged_models(&[e.id], "name = 'model'", 10, None)
        .unwrap();
    assert_eq!(found.items, vec![t.logged_model(&m.id).unwrap()]);
    assert!(
        t.search_logged_models(&[e.id], "tags.x = 'y'", 10, None)
            .is_err()
    );
}
