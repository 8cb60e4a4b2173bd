//! The store conformance suite: what any backend of [`SessionStore`](crate::SessionStore) and
//! [`AdminStore`](crate::AdminStore) must do, as one public function per behaviour, each
//! generic over a factory of fresh, empty stores (`impl Fn() -> S`, `S: DeviceStore`).
//!
//! Behind the `conformance` feature. A backend runs the whole suite with
//! [`conformance_tests!`](crate::conformance_tests), which expands to one `#[test]` per
//! behaviour; capf-store runs it against [`SqliteStore`](crate::SqliteStore) in
//! `tests/capf-store.rs`:
//!
//! ```
//! mod conformance {
//!     use capf_store::conformance::Must;
//!     capf_store::conformance_tests!(|| capf_store::SqliteStore::open_in_memory([9; 32]).must());
//! }
//!
//! // Or one behaviour alone:
//! use capf_store::conformance::Must;
//! capf_store::conformance::lifecycle::begin_attempt_needs_an_operation_to_run(|| {
//!     capf_store::SqliteStore::open_in_memory([9; 32]).must()
//! });
//! ```
//!
//! A behaviour fails by panicking, as a test does. What only one backend can show (SQLite's
//! files, query plans, schema constraints, crash safety) stays in that backend's own tests.

// Test code: a failed step fails the test loudly, through `Must` (once) and `assert!`.
#![allow(clippy::panic)]

pub mod accounts;
pub mod admin;
pub mod ca_requests;
pub mod jobs;
pub mod lifecycle;

/// A step of a conformance test that must succeed: [`must`](Must::must) gives the value or
/// fails the test with the error and the caller's line, as a failed `assert!` does. The suite's
/// one place that panics on a store's answer; nothing outside tests should use it.
pub trait Must<T> {
    /// The value, or a test failure naming what went wrong.
    fn must(self) -> T;
}

impl<T, E: core::fmt::Debug> Must<T> for Result<T, E> {
    #[track_caller]
    fn must(self) -> T {
        match self {
            Ok(value) => value,
            Err(e) => panic!("conformance step failed: {e:?}"),
        }
    }
}

impl<T> Must<T> for Option<T> {
    #[track_caller]
    fn must(self) -> T {
        match self {
            Some(value) => value,
            None => panic!("conformance step failed: nothing where a value was expected"),
        }
    }
}

/// One `#[test]` per behaviour of the [conformance suite](crate::conformance), each calling it
/// with the factory given: an expression that makes a fresh, empty store (evaluated once per
/// test), such as a closure `|| MyStore::open_empty().must()` ([`Must`]).
///
/// Invoke it inside a module of a test crate (the tests take the behaviours' names).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@each $factory; lifecycle:
            adds_a_device_pending_when_an_operation_is_given,
            adds_a_device_without_operation_with_status_none,
            rejects_a_duplicate_name_ignoring_case,
            lists_devices_ordered_by_name,
            unknown_devices_are_a_typed_error_for_writes_and_none_for_reads,
            updates_only_the_fields_given,
            every_operation_and_key_policy_round_trips,
            schedule_resets_attempts_the_ec_flag_and_the_last_error,
            begin_attempt_needs_an_operation_to_run,
            auth_failures_count_lock_out_and_reset_when_an_attempt_begins,
            interrupted_attempts_go_back_to_pending_and_failed_ones_stay_scheduled,
            a_late_end_attempt_never_clobbers_a_success,
            expiry_applies_only_to_an_operation_to_run,
            an_ec_key_generation_failure_makes_the_next_attempt_ask_for_rsa,
            a_new_issuance_makes_unconfirmed_ones_stale_and_an_install_supersedes_the_old,
            confirming_clears_the_operation_and_the_one_time_auth_string,
            confirming_rejects_unknown_and_foreign_serials,
            rejects_duplicate_serials_and_malformed_records,
            delete_done_deletes_installed_lscs_only,
            fetch_done_stores_the_certificate_and_succeeds,
            removing_a_device_keeps_its_lscs_and_drops_its_troubleshoot_results,
            revokes_an_lsc_once,
            auth_strings_follow_the_rule_and_check_under_any_case_of_the_name,
            settings_default_and_round_trip,
            audit_is_newest_first_filtered_and_limited,
            every_change_appends_exactly_one_audit_entry,
            the_store_is_usable_as_a_trait_object_across_threads,
            an_interrupted_install_keeps_the_lsc_issued_and_the_next_issuance_makes_it_stale,
            failed_authentication_is_counted_locked_out_and_reset,
            devices_in_progress_are_those_with_an_attempt_running,
            lsc_state_is_per_device_and_follows_the_lifecycle,
            a_refused_session_is_audited_and_changes_nothing,
        );
        $crate::conformance_tests!(@each $factory; admin:
            bulk_insert_is_all_or_nothing_and_names_the_bad_item,
            queries_combine_name_pattern_pool_model_status_and_lsc_expiry,
            a_device_page_is_a_slice_of_the_query_with_its_total,
            bulk_update_dry_run_shows_the_changes_and_changes_nothing,
            generated_strings_are_set_with_the_mode_and_only_as_a_tag,
            status_report_counts_each_status_and_past_complete_by,
            expiry_revocation_and_stale_lsc_deletion,
            keepalive_is_stored_alone,
            templates_round_trip_replace_and_remove,
            imported_lscs_are_stored_as_given_all_or_nothing,
        );
        $crate::conformance_tests!(@each $factory; ca_requests:
            ca_requests_are_recorded_listed_and_deleted,
            a_request_is_issued_then_delivered_when_the_phone_confirms,
            a_new_request_fails_the_pending_one_and_makes_the_issued_one_stale,
            certificates_and_failures_apply_only_to_pending_requests,
            a_request_needs_an_external_mode_a_csr_and_a_key,
            the_open_request_is_the_newest_pending_or_issued_one_of_the_device,
            deleting_requests_is_audited_and_stales_an_undelivered_lsc,
            every_request_change_is_audited,
            a_capf_issuance_makes_an_issued_request_stale,
            external_ca_settings_default_and_round_trip,
            a_batch_of_certificates_applies_each_on_its_own,
        );
        $crate::conformance_tests!(@each $factory; accounts:
            accounts_are_added_found_listed_and_removed,
            login_failures_count_and_a_login_resets_them,
            api_tokens_are_found_by_hash_and_go_with_their_account,
            changes_through_an_account_handle_are_audited_with_its_name,
            admin_actions_are_audited_without_a_device_and_with_the_account,
        );
        $crate::conformance_tests!(@each $factory; jobs:
            jobs_are_stored_listed_and_cancelled,
            a_due_job_is_claimed_once_and_finished_with_its_result,
            concurrent_claims_take_each_job_exactly_once,
            a_singleton_job_is_one_at_a_time,
            running_jobs_of_a_restarted_node_are_claimed_again,
            a_job_of_a_dead_node_is_claimed_again_after_its_lease,
            a_job_whose_work_committed_is_not_run_again,
            job_changes_are_audited,
            a_directory_sync_adds_new_devices_only_and_reports_departed_ones,
            a_directory_sync_dry_run_or_a_bad_entry_applies_nothing,
            the_directory_configuration_round_trips_without_showing_its_password,
        );
    };
    (@each $factory:expr; $module:ident: $($behaviour:ident,)*) => {
        $(
            #[test]
            fn $behaviour() {
                $crate::conformance::$module::$behaviour($factory);
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    /// Every public behaviour is in [`conformance_tests!`], so a backend runs it.
    #[test]
    fn the_macro_runs_every_behaviour() {
        let this = include_str!("conformance.rs");
        let listed =
            &this[this.find("macro_rules!").unwrap()..this.find("(@each $factory:expr;").unwrap()];
        for (module, source) in [
            ("lifecycle", include_str!("conformance/lifecycle.rs")),
            ("admin", include_str!("conformance/admin.rs")),
            ("ca_requests", include_str!("conformance/ca_requests.rs")),
            ("accounts", include_str!("conformance/accounts.rs")),
            ("jobs", include_str!("conformance/jobs.rs")),
        ] {
            let behaviours: Vec<&str> = source
                .lines()
                .filter_map(|l| l.strip_prefix("pub fn "))
                .map(|l| l.split(['<', '(']).next().unwrap())
                .collect();
            assert!(!behaviours.is_empty(), "{module}");
            for b in behaviours {
                assert!(
                    listed.contains(&format!(" {b},\n")),
                    "{module}::{b} is not in conformance_tests!"
                );
            }
        }
    }
}
