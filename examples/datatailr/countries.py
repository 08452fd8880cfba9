from f8a_jobs.client.datatailr import DAG, Schedule, Task

list_of_countries = ['FR', 'DE', 'GB', 'IT', 'NL']
with DAG(Name='My Batch Job', Tag='dev', Schedule=Schedule(at_hours=[10], at_minutes=[0])) as dag:
    tasks_per_country = [Task(
        Name=f'Task #{i} - {country_code}',
        Image='My image',
        Description=f'This job calculates something for {country_code}',
        dag=dag,
        CPU=1000,
        Memory=1500,
        Entrypoint='my_package.file_with_entrypoint',
        CountForPrewarming=True,
        ConfigurationJson={'country': country_code}
    ) for i, country_code in enumerate(list_of_countries)]
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
