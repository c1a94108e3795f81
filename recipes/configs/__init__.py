"""The recipes' YAML configs. They ship inside the package as `hf_transfer.configs`, so that a subcommand whose
default is a tuned config (`hf-transfer compare`: the default study, compare.yaml) finds it in any install."""
