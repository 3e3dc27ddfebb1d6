"""Planning: config → grid → job specs, and the guards around finished runs (stdlib + traces).

Never imports `jouleflow.measure`: a campaign plans, and a run job is supervised, without GPU or
serving dependencies (docs/architecture.md).
"""
