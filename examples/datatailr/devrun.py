from my_test_batch.entrypoints import *
from f8a_jobs.client.datatailr import DAG

with DAG(Name='Test Batch DevRun', DevRun=True, WorkDir='~/example'):
    value = load()
    compute(input=value)
