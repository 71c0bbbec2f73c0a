//! The bookkeeping tables of the migration tools applications use. Such a table records which
//! migrations ran for the whole database, and the tool reads it without a tenant set (after
//! the cutover it would read no row and run every migration again), so it is shared.

/// Table name → the tool that keeps it. Names only a tool uses: a generic `migrations` table
/// may be the application's own data.
const TABLES: &[(&str, &str)] = &[
    ("schema_migrations", "Rails, Ecto, dbmate or golang-migrate"),
    ("ar_internal_metadata", "Rails"),
    ("_sqlx_migrations", "sqlx"),
    ("__diesel_schema_migrations", "Diesel"),
    ("refinery_schema_history", "refinery"),
    ("seaql_migrations", "SeaORM"),
    ("flyway_schema_history", "Flyway"),
    ("databasechangelog", "Liquibase"),
    ("databasechangeloglock", "Liquibase"),
    ("alembic_version", "Alembic"),
    ("django_migrations", "Django"),
    ("goose_db_version", "goose"),
    ("gorp_migrations", "sql-migrate"),
    ("knex_migrations", "Knex"),
    ("knex_migrations_lock", "Knex"),
    ("SequelizeMeta", "Sequelize"),
    ("_prisma_migrations", "Prisma"),
    ("__EFMigrationsHistory", "Entity Framework"),
];

/// The tool whose bookkeeping table is called `name`, if one is.
pub fn migration_tool(name: &str) -> Option<&'static str> {
    TABLES.iter().find(|(table, _)| *table == name).map(|(_, tool)| *tool)
}

/// Every bookkeeping table name.
pub fn migration_table_names() -> impl Iterator<Item = &'static str> {
    TABLES.iter().map(|(table, _)| *table)
}
