"""``Entrypoint='my_package.other_file_with_entrypoint'``: aggregates the countries."""


def __batch_main__(job_config):
    countries = job_config['all_countries']
    print(f'aggregating {len(countries)} countries: {", ".join(countries)}')
    return sorted(countries)
