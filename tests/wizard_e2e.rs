//! The wizard end to end: the real binary in a pseudo-terminal (tmux), driven with keys,
//! against a throwaway database; what the screen says and what the database holds must agree.

mod common;
use common::*;

use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of its own (its own socket), with one session running the wizard.
struct Pane {
    socket: String,
    session: String,
}

impl Pane {
    fn start(command: &str, width: u16, height: u16) -> Pane {
        let socket = format!("tenantize-e2e-{}-{}", std::process::id(), rand_suffix());
        let session = "wizard".to_string();
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-s",
                &session,
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .arg(command)
            .env("TERM", "xterm-256color")
            .status()
            .expect("tmux runs (install the tmux package)");
        assert!(status.success(), "tmux could not start the wizard");
        Pane { socket, session }
    }

    fn keys(&self, keys: &[&str]) {
        for key in keys {
            let status = Command::new("tmux")
                .args(["-L", &self.socket, "send-keys", "-t", &self.session, key])
                .status()
                .unwrap();
            assert!(status.success());
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", &self.session])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait until the screen satisfies `ok`, or fail with the last screen.
    fn wait(&self, what: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            if started.elapsed() > limit {
                panic!("timed out waiting for {what}; the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        // The server is usually gone already (the session ended with the wizard).
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64
}

/// The NULL-tenant count the live panel shows for `table` ("public.issue_comments  3,000  3,000 …").
fn null_count_on_screen(screen: &str, table: &str) -> Option<u64> {
    let line = screen.lines().find(|l| l.trim_start().starts_with(table) && l.contains(' '))?;
    let numbers: Vec<u64> =
        line.split_whitespace().skip(1).map_while(|w| w.replace(',', "").parse::<u64>().ok()).collect();
    numbers.get(1).copied()
}

fn stage_done(screen: &str, number: u8, name: &str) -> bool {
    screen.lines().any(|l| l.contains(&format!("✓ {number} {name}")))
}

/// Move the Plan screen's cursor onto the row that shows `label` (from the top, one row at a time).
fn select_row(pane: &Pane, label: &str) {
    let up: Vec<&str> = std::iter::repeat_n("k", 120).collect();
    pane.keys(&up);
    for _ in 0..120 {
        std::thread::sleep(Duration::from_millis(100));
        let screen = pane.screen();
        if screen.lines().any(|l| l.starts_with('›') && l.contains(label)) {
            return;
        }
        pane.keys(&["j"]);
    }
    panic!("no row {label} under the cursor:\n{}", pane.screen());
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_every_stage_with_keys_watch_the_nulls_go_to_zero_then_roll_back_a_step_a_stage_and_everything()
{
    let db = sample_db("wizard_e2e", 3000).await;
    let dir = scratch_dir();
    let plan = dir.path().join("plans").join("demo.plan.toml");
    db.plan_sample(&plan, &["--backfill", "batched", "--batch-rows", "500"]);
    let exit_file = dir.path().join("exit-code");
    let command = format!(
        "{} wizard {} --database-url '{}'; echo $? > {}",
        env!("CARGO_BIN_EXE_tenantize"),
        plan.display(),
        db.url,
        exit_file.display()
    );
    let pane = Pane::start(&command, 120, 40);
    pane.wait("the overview", Duration::from_secs(30), |s| {
        s.contains("[Overview]") && s.contains("public.issue_comments")
    });

    // To the plan; the cursor starts on stage 1 (opened: where the conversion stands).
    pane.keys(&["Tab"]);
    pane.wait("the plan screen", Duration::from_secs(5), |s| s.contains("[Plan]"));
    pane.keys(&["j", "j", "j", "A"]);
    pane.wait("the apply confirmation", Duration::from_secs(5), |s| {
        s.contains("Apply through stage 3 add-column")
    });
    pane.keys(&["y"]);
    let screen = pane.wait("stage 3 done and NULLs counted", Duration::from_secs(60), |s| {
        stage_done(s, 3, "add-column") && null_count_on_screen(s, "public.issue_comments") == Some(3000)
    });
    assert!(screen.contains("NULL"), "the live counts show the NULL column:\n{screen}");

    // The backfill: the NULL count on the screen must reach 0.
    pane.keys(&["j", "A"]);
    pane.wait("the stage 4 confirmation", Duration::from_secs(5), |s| {
        s.contains("Apply through stage 4 backfill")
    });
    pane.keys(&["y"]);
    pane.wait("NULL tenant counts reaching 0", Duration::from_secs(90), |s| {
        stage_done(s, 4, "backfill")
            && ["public.issue_comments", "public.issues", "public.users", "public.attachments"]
                .iter()
                .all(|t| null_count_on_screen(s, t) == Some(0))
    });

    // The rest of the conversion: stage 8 (the cutover, stage 10, stays pending).
    select_row(&pane, "8 rls");
    pane.keys(&["A"]);
    pane.wait("the confirmation for the rest", Duration::from_secs(5), |s| {
        s.contains("Apply through stage 8 rls")
    });
    pane.keys(&["y"]);
    let screen = pane.wait("every stage done", Duration::from_secs(120), |s| {
        stage_done(s, 8, "rls") && s.contains("idle")
    });
    let total = db.query_i64("SELECT count(*) FROM tenantize.steps").await;
    let cutover = db.query_i64("SELECT count(*) FROM tenantize.steps WHERE stage = 10").await;
    assert!(cutover > 0);
    let done = total - cutover;
    assert!(screen.contains(&format!("{done}/{total} steps done")), "{screen}");
    assert!(screen.contains("cutover pending") || screen.contains("10 cutover"), "{screen}");

    // Roll back the last step, with its confirmation.
    pane.keys(&["r"]);
    pane.wait("the rollback confirmation with its pre-counts", Duration::from_secs(10), |s| {
        s.contains("Roll back 8.rls:views") && s.contains("nothing to count")
    });
    pane.keys(&["y"]);
    pane.wait("the step rolled back", Duration::from_secs(30), |s| {
        s.contains("1 rolled back") && s.contains("idle")
    });

    assert_eq!(db.query_i64("SELECT count(*) FROM tenantize.steps WHERE state = 'done'").await, done - 1);
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM tenantize.steps WHERE step_id = '8.rls:views' AND state = 'rolled_back'"
        )
        .await,
        1
    );
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM pg_class WHERE oid = 'public.open_issues'::regclass AND reloptions IS NULL"
        )
        .await,
        1,
        "the view's security_invoker was reset"
    );
    db.tenantize(&["verify", plan.to_str().unwrap()]).expect_ok().expect_output("applied through stage 7");

    // R on stage 7: stages 7 and 8 go, stages 1 to 6 stay.
    select_row(&pane, "7 unique");
    pane.keys(&["R"]);
    pane.wait("the stage rollback confirmation", Duration::from_secs(20), |s| {
        s.contains("Roll back stage 7 unique and later") && s.contains("y to roll back")
    });
    pane.keys(&["y"]);
    pane.wait("stages 7 and 8 rolled back", Duration::from_secs(120), |s| {
        s.contains("idle") && !stage_done(s, 7, "unique")
    });
    let later = "SELECT count(*) FROM tenantize.steps WHERE step_id ~ '^[78][.]' AND state <> 'rolled_back'";
    let kept = "SELECT count(*) FROM tenantize.steps WHERE step_id ~ '^[1-6][.]' AND state <> 'done'";
    assert_eq!(db.query_i64(later).await, 0, "{}", pane.screen());
    assert_eq!(db.query_i64(kept).await, 0, "{}", pane.screen());

    // U: everything, back to the schema it started from.
    pane.keys(&["U"]);
    pane.wait("the full rollback confirmation", Duration::from_secs(20), |s| {
        s.contains("Roll back everything") && s.contains("y to roll back")
    });
    pane.keys(&["y"]);
    pane.wait("everything rolled back", Duration::from_secs(120), |s| {
        s.contains("idle") && s.contains(&format!(" 0/{total} steps done"))
    });
    assert_eq!(
        db.query_i64("SELECT count(*) FROM tenantize.steps WHERE state NOT IN ('rolled_back', 'pending')")
            .await,
        0
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM information_schema.columns WHERE column_name = 'tenant_id'").await,
        0,
        "no tenant column is left"
    );

    pane.keys(&["q"]);
    let started = Instant::now();
    while !exit_file.exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "the wizard did not quit:\n{}", pane.screen());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(std::fs::read_to_string(&exit_file).unwrap().trim(), "0");
    assert_eq!(
        db.query_i64("SELECT count(*) FROM public.issue_comments").await,
        3000,
        "every row is still there"
    );
    // The wizard wrote run logs next to the plan: one apply per confirmation, one per rollback.
    let logs: Vec<String> = std::fs::read_dir(plan.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    assert_eq!(logs.iter().filter(|n| n.ends_with(".apply.jsonl")).count(), 3, "{logs:?}");
    assert_eq!(logs.iter().filter(|n| n.ends_with(".rollback.jsonl")).count(), 3, "{logs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wizard_fits_80_by_24_resumes_a_conversion_and_quits_restoring_the_terminal() {
    let db = sample_db("wizard_small", 500).await;
    let dir = scratch_dir();
    let plan = dir.path().join("plan.toml");
    db.plan_sample(&plan, &[]);
    db.tenantize(&["apply", plan.to_str().unwrap(), "--through", "5", "--yes"]).expect_ok();
    let exit_file = dir.path().join("exit-code");
    let command = format!(
        "NO_COLOR=1 {} wizard {} --database-url '{}'; echo $? > {}; sleep 30",
        env!("CARGO_BIN_EXE_tenantize"),
        plan.display(),
        db.url,
        exit_file.display()
    );
    let pane = Pane::start(&command, 80, 24);
    let screen = pane.wait("the overview", Duration::from_secs(30), |s| s.contains("[Overview]"));
    assert!(screen.contains("resuming"), "the wizard says it resumes a conversion in progress:\n{screen}");
    pane.keys(&["Tab"]);
    let screen = pane.wait("the plan at stage 6", Duration::from_secs(5), |s| s.contains("[Plan]"));
    assert!(stage_done(&screen, 5, "not-null"), "{screen}");
    assert!(
        screen.lines().any(|l| l.contains("6 indexes") && l.contains('›')),
        "the cursor is where the conversion stands:\n{screen}"
    );
    for line in screen.lines() {
        assert!(line.chars().count() <= 80, "a line is wider than the terminal: {line:?}");
    }
    pane.keys(&["?"]);
    pane.wait("the help", Duration::from_secs(5), |s| {
        s.contains("Keys") && s.contains("roll back the last applied step")
    });
    pane.keys(&["Escape", "q"]);
    let screen = pane.wait("the shell again", Duration::from_secs(20), |_| exit_file.exists());
    assert_eq!(std::fs::read_to_string(&exit_file).unwrap().trim(), "0");
    assert!(!screen.contains("[Plan]"), "the alternate screen was left on quit:\n{screen}");
}
