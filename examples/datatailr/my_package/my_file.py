from f8a_jobs.client.datatailr import dt


@dt.scheduler.batch()
def foo(rundate, job_config):
    print(f'{job_config=}')
    print(f'{rundate=}')
    return 'This is the return value of function foo'


@dt.scheduler.batch()
def bar(foo):
    print(f'{foo=}')
    return 'This is the return value of function bar'


@dt.scheduler.batch(translation_table={'running_date': 'rundate'})
def baz(foo, bar, running_date):
    print(f'{foo=}')
    print(f'{bar=}')
    print(f'I am running with a custom rundate: {running_date}')
    return 'This is the return value of function baz'
