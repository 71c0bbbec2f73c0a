//! Render checks without snapshots: what must be on screen, at any size, deterministically.

use super::*;

#[test]
fn the_strongest_lock_named_is_on_an_application_table_not_the_new_tenant_table() {
    let model = plan_selected();
    let step_ids: Vec<String> = model.steps.iter().map(|s| s.id.clone()).collect();
    let text = screen(
        &with_overlay(
            model,
            Overlay::ConfirmApply { step_ids, scope: "everything".into(), stop_after: StopAfter::All },
        ),
        LARGE,
    );
    let line = text.lines().find(|l| l.contains("Strongest lock:")).expect("the lock line");
    assert!(line.contains("ACCESS EXCLUSIVE on public."), "{line}");
    assert!(!line.contains("tenants"), "the new tenant table blocks no one: {line}");
}

#[test]
fn any_size_draws_without_panicking() {
    let mut models = vec![
        overview(),
        plan_selected(),
        running_backfill(),
        lock_wait(),
        failed_step(),
        confirm_apply(),
        confirm_rollback(),
        with_overlay(running_backfill(), Overlay::ConfirmQuit),
        with_overlay(plan_selected(), Overlay::Help),
        with_overlay(plan_selected(), Overlay::WritePlan { path: "x".repeat(300) }),
        fixture::model(),
    ];
    let mut empty = fixture::model();
    empty.plan.steps.clear();
    empty.steps.clear();
    empty.plan.tables.clear();
    models.push(empty);
    for model in &mut models {
        for screen_kind in Screen::ALL {
            model.screen = screen_kind;
            for size in [(1, 1), (2, 2), (20, 5), (30, 8), (45, 12), (60, 15), (80, 24), (100, 30), (200, 60)]
            {
                let text = screen(model, size);
                assert_eq!(text.lines().count(), size.1 as usize);
            }
        }
    }
    // 20x5 still says where we are.
    let text = screen(&plan_selected(), (20, 5));
    assert!(text.contains("tenantize") || text.contains("app"), "{text}");
}

#[test]
fn drawing_is_deterministic_and_reads_the_clock_from_the_model() {
    let model = running_backfill();
    assert_eq!(screen(&model, LARGE), screen(&model, LARGE));
    let mut later = model.clone();
    later.clock += Duration::from_secs(10);
    let text = screen(&later, LARGE);
    assert!(text.contains("51.8 s"), "{text}");
    assert!(text.contains("counts 11.2 s ago"), "{text}");
}

#[test]
fn the_tree_keeps_the_cursor_visible_in_a_long_list() {
    let mut model = plan_selected();
    for stage in Stage::ALL {
        model.expanded.insert(stage);
    }
    let last = model.steps.len() - 1;
    model.cursor = model.rows().iter().position(|r| *r == Row::Step(last)).unwrap();
    let text = screen(&model, SMALL);
    assert!(text.contains("▸") || text.contains("▾"));
    assert!(text.contains("issues"), "{text}");
    assert!(text.contains(&model.steps[last].id), "the selected (last) step is shown: {text}");
    assert!(text.contains('↑'), "a marker says rows are hidden above: {text}");
}

#[test]
fn the_header_says_who_and_what() {
    let mut model = running_backfill();
    model.server.superuser = true;
    model.server.bypass_rls = true;
    model.job.as_mut().unwrap().cancelling = true;
    let text = screen(&model, LARGE);
    let header = text.lines().next().unwrap();
    assert!(header.contains("app · PostgreSQL 15.18 · app_owner (superuser, BYPASSRLS)"), "{header}");
    assert!(header.contains("cancelling…"), "{header}");
    let small = screen(&model, SMALL);
    assert!(small.lines().next().unwrap().contains("cancelling…"), "what runs wins the space: {small}");
}
