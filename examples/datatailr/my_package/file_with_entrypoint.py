"""``Entrypoint='my_package.file_with_entrypoint'``: a module whose ``__batch_main__`` runs."""


def __batch_main__(job_config, sub_job_name, part_num, num_parts):
    country = job_config['country']
    print(f'{sub_job_name}: part {part_num} of {num_parts}, calculating for {country}')
    return {'country': country, 'value': len(country) * 10}
