"""Where the study engine and a job meet, named once for both sides: the study engine names the job by its import
path (it never imports it) and tells it its CPU threads through the environment. Torch-free."""

DEFAULT_JOB = "ablate.train.job:run_job"  # one run's training (or its reuse) and evaluation
THREADS_ENV = "ABLATE_THREADS"  # a job's CPU threads: set by the local executor, read by the job
