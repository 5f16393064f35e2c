"""OpenAI's reinforcement fine-tuning graders (string_check, text_similarity, score_model,
label_model, python, multi) run with our machinery: templates (templates), checks with specific
messages (validation), judge-model graders (model_graders), and one grader on one sample and row
with OpenAI's response shape (running).

Imports: rewards.graders, rewards.types, rewards.code, rewards.scoring (python graders: the
sandbox), rewards.judge (model graders), jobs.models (the caller's registry), rftconsole.
"""
