from f8a_jobs.client.datatailr import DAG, ParallelTask, Schedule, Task

list_of_countries = ['FR', 'DE', 'GB', 'IT', 'NL']
config_parallel = [{
    'country': country_code,
    'Name': f'Task #{i} - {country_code}',
    'Description': f'This job calculates something for {country_code}'
} for i, country_code in enumerate(list_of_countries)]
with DAG(Name='My Batch Job', Tag='dev', Schedule=Schedule(at_hours=[10], at_minutes=[0])) as dag:
    tasks_per_country = ParallelTask(
        Name='Parallel Task for countries',
        Image='My image',
        Description='This job calculates something for specified countries',
        dag=dag,
        CPU=1000,
        Memory=1500,
        Entrypoint='my_package.file_with_entrypoint',
        CountForPrewarming=True,
        ConfigurationJson=config_parallel
    )
    final_task = Task(
        Name='Final Task',
        Image='My image',
        Description='The final job which aggregates results',
        dag=dag,
        Entrypoint='my_package.other_file_with_entrypoint',
        CountForPrewarming=False,
        ConfigurationJson={'all_countries': list_of_countries}
    )
    tasks_per_country >> final_task
dag.save()
