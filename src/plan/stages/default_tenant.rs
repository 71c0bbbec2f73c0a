//! Stage 2: the default tenant's row, which every existing row will belong to.

use crate::plan::analysis::Analysis;
use crate::plan::ddl::{check, stmt};
use crate::plan::model::{LockMode, Stage, Step};
use crate::sql::{quote_ident, quote_literal};

pub(in crate::plan) fn steps(a: &Analysis) -> Vec<Step> {
    let s = &a.scope;
    let t = &s.tenant.table;
    let key = quote_ident(&s.tenant.key_column);
    let value = s.tenant_value();
    vec![Step {
        id: format!("2.{}", Stage::DefaultTenant.name()),
        stage: Stage::DefaultTenant,
        title: format!("Insert the default tenant {:?}", s.tenant.default_name),
        note: "Every existing row will belong to this tenant.".into(),
        tables: vec![t.clone()],
        atomic: true,
        rows_estimate: 1,
        forward: vec![stmt(
            LockMode::RowExclusive,
            &[t],
            format!(
                "INSERT INTO {t} ({key}, name) VALUES ({value}, {});\n",
                quote_literal(&s.tenant.default_name)
            ),
        )],
        rollback_atomic: true,
        rollback: vec![stmt(
            LockMode::RowExclusive,
            &[t],
            format!("DELETE FROM {t} WHERE {key} = {value};\n"),
        )],
        no_rollback_reason: None,
        rollback_guards: Vec::new(),
        checks: vec![check(
            "default tenant row exists",
            1,
            format!("SELECT count(*) FROM {t} WHERE {key} = {value}"),
        )],
        backfill: None,
        hash: String::new(),
    }]
}
