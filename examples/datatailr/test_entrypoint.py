"""``Entrypoint='test_entrypoint.main'`` of the reference's ``Test Batch``."""


def main(sub_job_name, rundate):
    print(f'{sub_job_name} runs for {rundate}')
    return sub_job_name
