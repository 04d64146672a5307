//! The builtin embedder against figures published for all-MiniLM-L6-v2 (the
//! sentence-transformers README's similarity example), so a wrong ONNX graph, tokenizer or
//! pooling fails here. Needs the assets: `./scripts/setup-embeddings.sh`.
#![cfg(feature = "builtin-embeddings")]

use llm_gateway::embed::builtin;
use llm_gateway_compiler::centroids::dot;

#[test]
fn matches_the_published_similarities() {
    let model = builtin::Model::load(&builtin::asset_dir()).expect("run ./scripts/setup-embeddings.sh first");
    let v =
        model.embed(&["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]).unwrap();
    assert_eq!(v[0].len(), 384);
    for x in &v {
        assert!((dot(x, x) - 1.0).abs() < 1e-4, "unit length");
    }
    let close = |got: f32, want: f32| assert!((got - want).abs() < 0.002, "similarity {got}, published {want}");
    close(dot(&v[0], &v[1]), 0.6660);
    close(dot(&v[0], &v[2]), 0.1046);
    close(dot(&v[1], &v[2]), 0.1411);
}

#[test]
fn missing_assets_name_the_setup_command() {
    let dir = tempfile::tempdir().unwrap();
    let err = builtin::Model::load(dir.path()).err().unwrap();
    assert!(err.contains("./scripts/setup-embeddings.sh"), "{err}");
}
