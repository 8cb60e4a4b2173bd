//! Store maintenance: saving accepted verdicts, fingerprint prefixes, MIC roots.

use capf_trust::{FingerprintPrefix, PrefixMatch, Purpose, StoreDir, is_mic_root};

use super::{bundle, now, store};

#[test]
fn fingerprint_prefix_needs_eight_hex_digits_and_ignores_colons_and_case() {
    assert_eq!(
        FingerprintPrefix::parse("AB:CD:EF:01").unwrap().to_string(),
        "abcdef01"
    );
    for bad in ["abcdef0", "abcdefgh", "", "::::"] {
        assert_eq!(FingerprintPrefix::parse(bad), None, "{bad}");
    }
}

#[test]
fn finds_a_certificate_by_a_unique_prefix_only() {
    let mut s = store();
    let r = s
        .upload_pem(&Purpose::CAPF_TRUST, &bundle(&["root", "inter"]), now())
        .unwrap();
    let fp = r.verdicts[0].fingerprint;
    let text = fp.to_string();
    let prefix = FingerprintPrefix::parse(&text[..8].to_ascii_uppercase()).unwrap();
    assert_eq!(
        s.find_by_prefix(&Purpose::CAPF_TRUST, &prefix),
        PrefixMatch::One(fp)
    );
    assert_eq!(
        s.find_by_prefix(&Purpose::CALLMANAGER_TRUST, &prefix),
        PrefixMatch::None
    );
    let whole = FingerprintPrefix::parse(&text).unwrap();
    assert_eq!(
        s.find_by_prefix(&Purpose::CAPF_TRUST, &whole),
        PrefixMatch::One(fp)
    );
}

#[test]
fn saves_what_an_upload_accepted() {
    let root = std::env::temp_dir().join(format!("capf-trust-save-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = StoreDir::new(&root);
    let mut s = store();
    let r = s
        .upload_pem(&Purpose::CAPF_TRUST, &bundle(&["root", "inter"]), now())
        .unwrap();
    assert_eq!(
        dir.save_accepted(&s, &Purpose::CAPF_TRUST, &r.verdicts)
            .unwrap(),
        2
    );
    let loaded = dir.load(s.release()).unwrap();
    assert!(loaded.bad_files.is_empty());
    assert_eq!(loaded.store.certificates(&Purpose::CAPF_TRUST).len(), 2);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn mic_roots_compare_case_insensitively() {
    assert!(is_mic_root("cisco_manufacturing_ca"));
    assert!(is_mic_root("CAP-RTP-001"));
    assert!(!is_mic_root("CAPF-0123abcd"));
}
