from f8a_jobs.client.datatailr import DAG, Schedule, Task

IMAGE = 'f8a-jobs-examples'  # the reference leaves IMAGE to the reader

with DAG(Name='Test batch with decorators', Tag='dev', Schedule=Schedule()) as dag:
    foo = Task(
        Name='foo task',
        Image=IMAGE,
        Entrypoint='my_package.my_file.foo',
        dag=dag,
        Description='This is for testing'
    )
    bar = Task(
        Name='bar task',
        Image=IMAGE,
        Entrypoint='my_package.my_file.bar',
        dag=dag,
        ConfigurationJson={'arg_translation_table': {'foo task': 'foo'}},
        Description='This is for testing'
    )
    baz = Task(
        Name='baz task',
        Image=IMAGE,
        Entrypoint='my_package.my_file.baz',
        dag=dag,
        ConfigurationJson={'arg_translation_table': {'foo task': 'foo', 'bar task': 'bar'}},
        Description='This is for testing'
    )
    foo >> bar
    [foo, bar] >> baz
dag.save()
