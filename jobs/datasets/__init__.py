"""Training data: recognise and convert rows (formats; Bedrock invocation log records in
bedrock_logs, Llama/Mistral prompts in bedrock_bodies), read plain or gzip files line by line
within the size limit (streams), import a
file streaming it once (importer), keep it on disk, encrypted when a key is set (storage), page,
split and measure it (tools), move it over HTTP (transfers), and its pages and REST API.

Imports: jobs.models, jobs.registry.loading (a tokenizer, for token statistics), rftconsole
helpers; playground.logs for datasets built from invocation logs. Never jobs.training.
"""
