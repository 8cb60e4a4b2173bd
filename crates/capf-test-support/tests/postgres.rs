//! The throwaway PostgreSQL cluster starts once per test binary and hands out fresh databases.

#[test]
fn the_cluster_hands_out_fresh_databases() {
    let cluster = capf_test_support::postgres::cluster();
    let a = cluster.database();
    let b = cluster.database();
    assert_ne!(a.name, b.name);
    let mut client = postgres::Client::connect(&a.url, postgres::NoTls).unwrap();
    client.batch_execute("CREATE TABLE t (x INTEGER)").unwrap();
    let mut other = postgres::Client::connect(&b.url, postgres::NoTls).unwrap();
    let n: i64 = other
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 't'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    assert!(std::ptr::eq(
        cluster,
        capf_test_support::postgres::cluster()
    ));
}
